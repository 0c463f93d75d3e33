"""ControlNet through the API as sd-webui-controlnet clients use it: `alwayson_scripts.controlnet` on
txt2img, the `/controlnet/...` routes, the infotext, detected maps, and clear 4xx errors for bad units."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re

import cv2
import numpy as np
import pytest
import torch
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import post_txt2img
from tests.fixtures.tiny_controlnets import shapes_image, tiny_controlnet, write_lllyasviel
from tests.fixtures.tiny_models import jitter

SIZE = 64
BODY = {"steps": 2, "width": SIZE, "height": SIZE, "seed": 9, "sampler_name": "Euler", "prompt": "a fox"}


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _decode(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("cn"), "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    controlnet = jitter(ControlNetModel.from_unet(demo.unet), 5)
    folder = app.paths.controlnet_dir
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    write_lllyasviel(folder / "control_tiny_canny.safetensors", controlnet)
    write_lllyasviel(folder / "sub" / "control_tiny_shuffle.pth", controlnet)
    write_lllyasviel(folder / "control_xl_only.safetensors", tiny_controlnet("SDXL")["controlnet"])
    app.controlnet.models.refresh()
    return app


def _unit(**kw) -> dict:
    unit = {
        "enabled": True,
        "module": "canny",
        "model": "control_tiny_canny",
        "image": _png_b64(shapes_image()),
        "processor_res": 64,
    }
    return {**unit, **kw}


def _txt2img(client, *units, status: int = 200, **body):
    payload = {**BODY, **body, "alwayson_scripts": {"ControlNet": {"args": list(units)}}}
    return post_txt2img(client, payload, status)


def test_routes_list_models_modules_settings_and_version(client):
    models = client.get("/controlnet/model_list").json()["model_list"]
    assert any(name.startswith("control_tiny_canny [") and name.endswith("]") for name in models)
    assert any(name.startswith("control_tiny_shuffle [") for name in models)
    modules = client.get("/controlnet/module_list").json()
    assert modules["module_list"][0] == "none" and "canny" in modules["module_list"]
    assert modules["module_detail"]["canny"]["sliders"][1]["value"] == 100
    labels = client.get("/controlnet/module_list", params={"alias_names": True}).json()["module_list"]
    assert "invert (from white bg & black line)" in labels
    assert client.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    assert client.get("/controlnet/version").json()["version"] >= 2


def test_detect_returns_the_canny_map(client):
    image = shapes_image(128)
    r = client.post(
        "/controlnet/detect",
        json={
            "controlnet_module": "canny",
            "controlnet_input_images": [_png_b64(image)],
            "controlnet_processor_res": 128,
            "controlnet_threshold_a": 50,
            "controlnet_threshold_b": 150,
        },
    )
    assert r.status_code == 200, r.text
    edges = _decode(r.json()["images"][0])
    expected = cv2.Canny(image, 50, 150)
    assert np.array_equal(edges[:, :, 0], expected)


def test_a_controlnet_unit_changes_the_image_and_is_written_to_the_infotext(client):
    plain = _txt2img(client)
    controlled = _txt2img(client, _unit())
    assert controlled["images"][0] != plain["images"][0]
    assert len(controlled["images"]) == 2  # the image, then the detected map (as the extension)
    detected = _decode(controlled["images"][1])
    assert detected.shape == (SIZE, SIZE, 3) and set(np.unique(detected)) <= {0, 255}
    infotext = json.loads(controlled["info"])["infotexts"][0]
    assert 'ControlNet 0: "Module: canny, Model: control_tiny_canny [' in infotext
    assert "Weight: 1.0, Resize Mode: Crop and Resize, Processor Res: 64" in infotext
    again = _txt2img(client, _unit())
    assert again["images"][0] == controlled["images"][0]


def test_weight_zero_or_a_disabled_unit_equals_no_controlnet(client):
    plain = _txt2img(client)
    zero = _txt2img(client, _unit(weight=0))
    assert np.array_equal(_decode(zero["images"][0]), _decode(plain["images"][0]))
    disabled = _txt2img(client, _unit(enabled=False))
    assert disabled["images"] == plain["images"]
    assert "ControlNet" not in json.loads(disabled["info"])["infotexts"][0]


def test_two_units_and_the_extension_field_aliases(client):
    one = _txt2img(client, _unit())
    two = _txt2img(client, _unit(), _unit(module="invert", model="shuffle", lowvram=True, guidance=0.5))
    assert two["images"][0] != one["images"][0]
    infotext = json.loads(two["info"])["infotexts"][0]
    assert 'ControlNet 1: "Module: invert, Model: control_tiny_shuffle [' in infotext
    assert "Guidance End: 0.5" in infotext
    no_map = _txt2img(client, _unit(save_detected_map=False, unknown_field="ignored"))
    assert len(no_map["images"]) == 1


@pytest.mark.parametrize(
    ("unit", "status", "message"),
    [
        ({"image": None}, 400, "has no image"),
        ({"module": "no_such_preprocessor"}, 400, "Unknown ControlNet preprocessor"),
        ({"model": "missing_model"}, 400, "ControlNet model not found"),
        ({"model": "control_xl_only"}, 400, "is for SDXL; the loaded checkpoint is SD1"),
        ({"image": base64.b64encode(b"not an image").decode()}, 400, "not a readable image"),
        ({"guidance_start": 0.9, "guidance_end": 0.1}, 400, "guidance_start"),
        ({"weight": "heavy"}, 400, "weight must be a number"),
        ({"advanced_weighting": "strong"}, 400, "advanced_weighting must be a list of numbers"),
        ({"advanced_weighting": [1, 99]}, 400, "each weight must be from -10 to 10"),
        ({"advanced_weighting": [1.0, 0.5]}, 400, "unit 0: advanced_weighting: this ControlNet has"),
        ({"effective_region_mask": base64.b64encode(b"no").decode()}, 400, "effective_region_mask"),
        ({"ipadapter_input": ["gASVAAAAAAAAAAA="]}, 400, "ipadapter_input (the extension's pickled"),
        ({"resize_mode": "Stretch it"}, 400, "resize mode"),
        ({"module": "depth_midas"}, 400, "needs midas/dpt_hybrid-midas-501f0c75.pt"),
    ],
)
def test_bad_units_get_a_clear_4xx_and_the_server_keeps_serving(client, app, unit, status, message):
    weights = [p.detach().clone() for p in app.models.active.sd.unet.parameters()]
    body = _txt2img(client, _unit(**unit), status=status)
    assert message in body["detail"]
    assert all(
        torch.equal(a, b) for a, b in zip(weights, app.models.active.sd.unet.parameters(), strict=True)
    )
    assert _txt2img(client)["images"]


def test_a_huge_control_image_is_refused(client):
    huge = np.zeros((8, 17000, 3), np.uint8)
    body = _txt2img(client, _unit(image=_png_b64(huge)), status=400)
    assert "too large" in body["detail"]


def test_detect_without_images_or_with_an_unknown_module_is_a_4xx(client):
    assert client.post("/controlnet/detect", json={"controlnet_module": "canny"}).status_code == 400
    r = client.post(
        "/controlnet/detect",
        json={"controlnet_module": "nope", "controlnet_input_images": [_png_b64(shapes_image())]},
    )
    assert r.status_code == 400 and "Unknown ControlNet preprocessor" in r.json()["detail"]


def test_controlnet_works_with_and_prompts_loras_and_hypernetworks(client, app):
    from tests.fixtures.tiny_hypernetworks import write_hypernetwork
    from tests.fixtures.tiny_networks import write_lora

    demo = app.models.active.sd
    components = {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}
    write_lora(app.paths.lora_dir / "cn_style.safetensors", components, seed=3)
    app.paths.hypernetwork_dir.mkdir(parents=True, exist_ok=True)
    write_hypernetwork(app.paths.hypernetwork_dir / "cn_hn.pt", (64,), seed=2)
    app.loras.refresh()
    app.hypernetworks.refresh()
    weights = [p.detach().clone() for p in demo.unet.parameters()]
    prompt = "a fox AND a red hat :0.6 <lora:cn_style:0.8> <hypernet:cn_hn:0.5>"
    networks_only = _txt2img(client, prompt=prompt)
    everything = _txt2img(client, _unit(), prompt=prompt)
    assert everything["images"][0] != networks_only["images"][0]
    info = json.loads(everything["info"])
    assert not info["warnings"], info["warnings"]
    assert "Lora hashes" in info["infotexts"][0] and "ControlNet 0" in info["infotexts"][0]
    _txt2img(client)  # a job without networks restores the weights exactly
    assert all(torch.equal(a, b) for a, b in zip(weights, demo.unet.parameters(), strict=True))


def test_in_img2img_a_unit_without_an_image_uses_the_init_image(client):
    init = _png_b64(shapes_image())
    body = {**BODY, "init_images": [init], "denoising_strength": 0.7}

    def img2img(unit: dict) -> dict:
        r = client.post(
            "/sdapi/v1/img2img", json={**body, "alwayson_scripts": {"ControlNet": {"args": [unit]}}}
        )
        assert r.status_code == 200, r.text
        return r.json()

    without = img2img({k: v for k, v in _unit().items() if k != "image"})
    given = img2img(_unit(image=init))
    plain = client.post("/sdapi/v1/img2img", json=body).json()
    assert without["images"][0] == given["images"][0] != plain["images"][0]


def test_hr_option_picks_the_passes_of_a_hires_job(client):
    hires = {"enable_hr": True, "hr_upscaler": "Nearest", "denoising_strength": 0.6}
    images = {
        option: _decode(_txt2img(client, _unit(hr_option=option), **hires)["images"][0])
        for option in ("Both", "Low res only", "High res only")
    }
    images["no unit"] = _decode(_txt2img(client, **hires)["images"][0])
    assert all(image.shape[:2] == (2 * SIZE, 2 * SIZE) for image in images.values())
    names = list(images)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(images[a], images[b]), (a, b)
    _txt2img(client, _unit(hr_option="sometimes"), status=400, **hires)


def test_under_lowvram_a_unit_gives_the_same_image(client, app):
    """--medvram/--lowvram: the ControlNet follows the policy (on the compute device only while it runs)."""
    normal = _txt2img(client, _unit(weight=0.8))
    app.models.set_offload("low")
    try:
        offloaded = _txt2img(client, _unit(weight=0.8))
        assert app.models.active.sd.extra["offload"] == "low"
    finally:
        app.models.set_offload(None)
    assert np.array_equal(_decode(offloaded["images"][0]), _decode(normal["images"][0]))


def test_a_hed_preprocessor_runs_from_the_users_weight_file_in_detect_and_in_a_unit(client, app):
    from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
    from tests.fixtures.tiny_annotators import write_hed

    image = shapes_image(128)
    body = {"controlnet_module": "softedge_hed", "controlnet_input_images": [_png_b64(image)]}
    missing = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 128})
    assert missing.status_code == 400 and "hed/ControlNetHED.pth" in missing.json()["detail"]
    path = write_hed(app.controlnet.annotator_dirs[0])
    try:
        r = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 128})
        assert r.status_code == 200, r.text
        expected = get_preprocessor("softedge_hed").run(image, 128, annotator_dir=path.parent.parent)
        np.testing.assert_array_equal(_decode(r.json()["images"][0]), expected)
        assert len(np.unique(expected)) > 20
        controlled = _txt2img(client, _unit(module="softedge_hed", image=_png_b64(image)))
        detected = _decode(controlled["images"][1])
        shown = get_preprocessor("softedge_hed").run(image, 64, annotator_dir=path.parent.parent)
        assert detected.shape == (SIZE, SIZE, 3)
        np.testing.assert_array_equal(detected, cv2.resize(shown, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
        assert "Module: hed, " in json.loads(controlled["info"])["infotexts"][0]
    finally:
        path.unlink()


@pytest.mark.parametrize("module", ["seg_ofade20k", "seg_ufade20k"])
def test_detect_with_a_segmentation_network_draws_ade20k_colours(client, app, module):
    import shutil

    from modules.sumi.engine.controlnet.annotators.ade20k import PALETTE
    from tests.fixtures.tiny_annotators import write_uniformer
    from tests.fixtures.tiny_oneformer import write_tiny_oneformer

    write = write_tiny_oneformer if module == "seg_ofade20k" else write_uniformer
    folder = write(app.controlnet.annotator_dirs[0]).parent
    body = {"controlnet_module": module, "controlnet_input_images": [_png_b64(shapes_image(96))]}
    try:
        r = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 128})
        assert r.status_code == 200, r.text
        drawn = _decode(r.json()["images"][0])
        assert drawn.shape == (128, 128, 3)
        assert {tuple(c) for c in drawn.reshape(-1, 3)} <= {tuple(c) for c in PALETTE}
    finally:
        shutil.rmtree(folder)


def test_detect_with_openpose_returns_the_people_read_as_openpose_json_which_renders_back_the_same(
    client, app
):
    import shutil

    from tests.fixtures.tiny_annotators import POSE_PARTS, pose_picture, write_openpose

    body = {"controlnet_module": "openpose", "controlnet_input_images": [_png_b64(pose_picture())]}
    folder = write_openpose(app.controlnet.annotator_dirs[0])
    try:
        r = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 384})
        assert r.status_code == 200, r.text
        (pose,) = r.json()["poses"]
        assert (pose["canvas_width"], pose["canvas_height"], pose["animals"]) == (384, 384, [])
        (person,) = pose["people"]
        keypoints = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
        np.testing.assert_allclose(keypoints[:, :2] * 384, POSE_PARTS, atol=8)
        assert person["hand_left_keypoints_2d"] is None and person["face_keypoints_2d"] is None
        drawing = _decode(r.json()["images"][0])
        assert drawing.shape == (384, 384, 3) and (drawing == (255, 0, 0)).all(axis=-1).any()  # the nose
        rendered = client.post("/controlnet/render_openpose_json", json=[pose])  # the openpose editor's way
        assert rendered.status_code == 200, rendered.text
        assert rendered.json()["info"] == "Success"
        assert np.array_equal(_decode(rendered.json()["images"][0]), drawing)
        canny = client.post("/controlnet/detect", json={**body, "controlnet_module": "canny"})
        assert "poses" not in canny.json()
    finally:
        shutil.rmtree(folder)


def test_a_picture_is_detected_once_for_jobs_that_differ_only_in_weight_or_seed(client, app):
    """X/Y/Z cells over ControlNet weight (or seed) reuse the map; new settings detect again."""
    cache = app.controlnet.detections
    cache.clear()
    misses, hits = cache.misses, cache.hits
    image = _png_b64(shapes_image(96))
    first = _txt2img(client, _unit(image=image, weight=0.5))
    second = _txt2img(client, _unit(image=image, weight=1.0), seed=11)
    assert (cache.misses - misses, cache.hits - hits) == (1, 1)
    np.testing.assert_array_equal(_decode(first["images"][1]), _decode(second["images"][1]))  # the same map
    _txt2img(client, _unit(image=image, threshold_a=50))
    assert (cache.misses - misses, cache.hits - hits) == (2, 1)
    for seed in (1, 2):  # shuffle is random: its map follows the seed
        _txt2img(client, _unit(image=image, module="shuffle", model="control_tiny_shuffle"), seed=seed)
    assert (cache.misses - misses, cache.hits - hits) == (4, 1)


def _xyz_args(x_type: int, x_values: str) -> list:
    """X/Y/Z plot's 18 script args: one X axis, legends, the cells returned too."""
    return [
        x_type,
        x_values,
        None,
        0,
        "",
        None,
        0,
        "",
        None,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        0,
        False,
    ]


def test_xyz_plot_has_the_extension_s_controlnet_axes_after_a1111_s(client):
    from modules.sumi.services.jobs.xyz_plot import TXT2IMG_AXES, axis_index

    labels = [axis.label for axis in TXT2IMG_AXES]
    after = labels[labels.index("Size") + 1 :]
    assert after == [
        "[ControlNet] Enabled",
        "[ControlNet] Model",
        "[ControlNet] Weight",
        "[ControlNet] Guidance Start",
        "[ControlNet] Guidance End",
        "[ControlNet] Control Mode",
        "[ControlNet] Resize Mode",
        "[ControlNet] Preprocessor",
        "[ControlNet] Pre Resolution",
        "[ControlNet] Pre Threshold A",
        "[ControlNet] Pre Threshold B",
    ]
    info = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json()}
    assert "[ControlNet] Weight" in info["x/y/z plot"]["args"][0]["choices"]
    assert axis_index("[controlnet] weight") == labels.index("[ControlNet] Weight")


def test_xyz_plot_over_controlnet_weight_draws_each_cell_with_its_weight_from_one_detection(client, app):
    from modules.sumi.services.jobs.xyz_plot import axis_index

    cache = app.controlnet.detections
    cache.clear()
    misses, hits = cache.misses, cache.hits
    unit = _unit(image=_png_b64(shapes_image(80)))
    args = _xyz_args(axis_index("[ControlNet] Weight"), "0, 2")
    body = _txt2img(client, unit, script_name="X/Y/Z plot", script_args=args)
    infotexts = json.loads(body["info"])["infotexts"]
    cells = [_decode(image) for image in body["images"][1:3]]
    assert "Weight: 0.0," in infotexts[1] and "Weight: 2.0," in infotexts[2]
    assert not np.array_equal(cells[0], cells[1])  # the weight changed the picture
    plain = _decode(_txt2img(client, _unit(image=unit["image"], weight=0.0))["images"][0])
    np.testing.assert_array_equal(cells[0], plain)  # the weight-0 cell is the job with weight 0
    assert (cache.misses - misses, cache.hits - hits) == (1, 2)  # one detection for three jobs


def test_xyz_plot_controlnet_values_are_checked_before_the_first_image(client):
    from modules.sumi.services.jobs.xyz_plot import axis_index

    unit = _unit()
    model = _xyz_args(axis_index("[ControlNet] Model"), "control_tiny_canny, no_such_model")
    detail = _txt2img(client, unit, status=400, script_name="X/Y/Z plot", script_args=model)["detail"]
    assert "[ControlNet] Model" in detail and "no_such_model" in detail
    modes = _xyz_args(axis_index("[ControlNet] Control Mode"), "Balanced, Loudest")
    assert (
        "Loudest" in _txt2img(client, unit, status=400, script_name="X/Y/Z plot", script_args=modes)["detail"]
    )
    weights = _xyz_args(axis_index("[ControlNet] Weight"), "0.5, 1")
    detail = post_txt2img(client, {**BODY, "script_name": "X/Y/Z plot", "script_args": weights}, 400)[
        "detail"
    ]
    assert "no ControlNet unit" in detail


def test_a_t2i_adapter_file_in_the_controlnet_folder_works_as_a_unit(client, app):
    from safetensors.torch import save_file

    from tests.fixtures.tiny_controlnets import random_t2i_adapter, tencentarc_adapter_state

    unet = load_checkpoint(app.checkpoints.list()[0].filename).unet
    adapter = random_t2i_adapter("full_adapter", unet.config.block_out_channels, seed=4)
    with torch.no_grad():
        for value in adapter.parameters():
            value.mul_(4.0)
    path = app.paths.controlnet_dir / "t2iadapter_canny_tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tencentarc_adapter_state(adapter).items()}, path)
    app.controlnet.models.refresh()
    try:
        names = client.get("/controlnet/model_list").json()["model_list"]
        assert any(name.startswith("t2iadapter_canny_tiny [") for name in names)
        unit = _unit(model="t2iadapter_canny_tiny", image=_png_b64(shapes_image(64)))
        controlled = _txt2img(client, unit)
        plain = _txt2img(client)
        assert not np.array_equal(_decode(controlled["images"][0]), _decode(plain["images"][0]))
        info = json.loads(controlled["info"])["infotexts"][0]
        assert "Model: t2iadapter_canny_tiny [" in info and "Module: canny" in info
        softer = _txt2img(client, _unit(model="t2iadapter_canny_tiny", image=unit["image"], weight=0.0))
        np.testing.assert_array_equal(_decode(softer["images"][0]), _decode(plain["images"][0]))
    finally:
        path.unlink()
        app.controlnet.models.refresh()


def test_advanced_weighting_and_an_effective_region_mask_set_how_strongly_and_where_a_unit_acts(client):
    def first(*units, **body) -> np.ndarray:
        return _decode(_txt2img(client, *units, **body)["images"][0])

    plain = first()
    unit = first(_unit(weight=0.8))
    detail = _txt2img(client, _unit(advanced_weighting=[1.0]), status=400)["detail"]
    levels = int(re.search(r"give (\d+) weights", detail).group(1))  # pyright: ignore[reportOptionalMemberAccess]
    np.testing.assert_array_equal(first(_unit(weight=1.7, advanced_weighting=[0.8] * levels)), unit)
    np.testing.assert_array_equal(first(_unit(advanced_weighting=[0] * levels)), plain)
    white, black = np.full((32, 32), 255, np.uint8), np.zeros((32, 32, 3), np.uint8)
    np.testing.assert_array_equal(first(_unit(weight=0.8, effective_region_mask=_png_b64(white))), unit)
    np.testing.assert_array_equal(first(_unit(weight=0.8, effective_region_mask=_png_b64(black))), plain)
    half = black.copy()
    half[:, 16:, 0] = 255  # the right half, in the red channel the extension reads
    right = first(_unit(weight=0.8, effective_region_mask=_png_b64(half)))
    assert not np.array_equal(right, unit) and not np.array_equal(right, plain)


def test_dw_openpose_detects_people_and_a_unit_draws_with_their_pose(client, app):
    import shutil

    from tests.fixtures.tiny_dwpose import bright_figures, write_dwpose

    picture = _png_b64(bright_figures())
    folder = write_dwpose(app.controlnet.annotator_dirs[0])
    try:
        body = {"controlnet_module": "dw_openpose_full", "controlnet_input_images": [picture]}
        r = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 256})
        assert r.status_code == 200, r.text
        (pose,) = r.json()["poses"]
        assert (pose["canvas_width"], pose["canvas_height"]) == (320, 256) and pose["people"]
        assert len(pose["people"][0]["pose_keypoints_2d"]) == 18 * 3
        assert _decode(r.json()["images"][0]).any()
        unit = _unit(module="dw_openpose_full", image=picture, processor_res=256)
        result = _txt2img(client, unit)
        assert len(result["images"]) == 2  # the image and the detected pose
        assert (
            "Module: dw_openpose_full, Model: control_tiny_canny ["
            in json.loads(result["info"])["infotexts"][0]
        )
    finally:
        shutil.rmtree(folder)


def test_tile_colorfix_pulls_the_colours_to_the_pictures_and_sharp_and_hires_work(client):
    """The demo model draws a shape on a light background; with tile_colorfix and a dark red picture
    its colours move to the picture's (the same tile model with tile_resample does not do that)."""
    red = np.zeros((SIZE, SIZE, 3), np.uint8)
    red[..., 0] = 150
    picture = _png_b64(red)
    tile = {"model": "control_tiny_canny", "image": picture}
    resample = _decode(_txt2img(client, _unit(module="tile_resample", **tile))["images"][0]).astype(float)
    fixed = _txt2img(client, _unit(module="tile_colorfix", threshold_a=3, **tile))
    colour = _decode(fixed["images"][0]).astype(float)
    distance = lambda image: float(np.abs(image.mean(axis=(0, 1)) - (150, 0, 0)).mean())  # noqa: E731
    assert distance(colour) < 0.6 * distance(resample), (distance(colour), distance(resample))
    infotext = json.loads(fixed["info"])["infotexts"][0]
    assert "Module: tile_colorfix, Model: control_tiny_canny" in infotext
    sharp = {
        s: _decode(
            _txt2img(client, _unit(module="tile_colorfix+sharp", threshold_a=3, threshold_b=s, **tile))[
                "images"
            ][0]
        )
        for s in (0.0, 2.0)
    }
    assert not np.array_equal(sharp[0.0], sharp[2.0])
    np.testing.assert_array_equal(sharp[0.0], colour)  # sharpness 0: the plain colour fix
    hires = {"enable_hr": True, "hr_upscaler": "Nearest", "denoising_strength": 0.6}
    big = _decode(_txt2img(client, _unit(module="tile_colorfix", **tile), **hires)["images"][0])
    assert big.shape[:2] == (2 * SIZE, 2 * SIZE)


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe is not installed")
def test_mediapipe_face_detects_a_real_face_and_a_unit_draws_with_its_mesh(client):
    """mediapipe_face runs when the mediapipe package is installed (CI installs it; Sumi does not need it)."""
    skimage = pytest.importorskip("skimage")
    from pathlib import Path

    from modules.sumi.engine.controlnet.preprocessors import get_preprocessor

    face = np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB"))
    body = {"controlnet_module": "mediapipe_face", "controlnet_input_images": [_png_b64(face)]}
    r = client.post("/controlnet/detect", json={**body, "controlnet_processor_res": 512})
    assert r.status_code == 200, r.text
    drawn = _decode(r.json()["images"][0])
    np.testing.assert_array_equal(drawn, get_preprocessor("mediapipe_face").run(face, 512))
    assert drawn.any(axis=2).mean() > 0.005
    detail = client.get("/controlnet/module_list").json()["module_detail"]["mediapipe_face"]
    assert [s["name"] for s in detail["sliders"]] == ["Resolution", "Max Faces", "Min Face Confidence"]

    controlled = _txt2img(client, _unit(module="mediapipe_face", image=_png_b64(face), processor_res=512))
    assert _decode(controlled["images"][1]).any()
    assert "Module: mediapipe_face, " in json.loads(controlled["info"])["infotexts"][0]
