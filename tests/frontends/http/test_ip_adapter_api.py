"""IP-Adapter through the A1111 API: h94's files in models/ControlNet, the CLIP vision encoder where the
extension keeps it (or in models/clip_vision), the extension's preprocessor names; the picture steers
the image, weight 0 does nothing, and whatever is missing or mismatched is a 400 saying what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.app_support import decode_pixels, encode_png, post_txt2img
from tests.fixtures.tiny_ip_adapter import (
    ip_adapter_state,
    style_state,
    tiny_clip_vision,
    write_clip_vision,
    write_ip_adapter,
)
from tests.fixtures.tiny_models import write_tiny_checkpoint

BODY = {"prompt": "a fox", "steps": 3, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("ipadapter")
    app = make_module_app(data, "--nowebui")
    components = write_tiny_checkpoint(app.paths.ckpt_dirs[0] / "tiny_ip.safetensors", "SD1", seed=2)
    app.checkpoints.refresh()
    unet = components["unet"]
    write_ip_adapter(
        app.paths.controlnet_dir / "ip-adapter_sd15.safetensors", ip_adapter_state(unet, "plain", 1)
    )
    write_ip_adapter(app.paths.controlnet_dir / "ip-adapter-plus_sd15.bin", ip_adapter_state(unet, "plus", 2))
    write_clip_vision(
        app.paths.controlnet_dir / "annotators" / "clip_vision" / "clip_h.pth", tiny_clip_vision(4)
    )
    torch.save(style_state(context=32), app.paths.controlnet_dir / "t2iadapter_style_sd14v1.pth")
    app.controlnet.models.refresh()
    return app


def _png(array: np.ndarray) -> str:
    return encode_png(Image.fromarray(array))


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((24, 24, 1), np.uint8))


_pixels = decode_pixels


def _job(client, status: int = 200, picture: int = 0, **unit) -> dict:
    body = {**BODY, "override_settings": {"sd_model_checkpoint": "tiny_ip"}}
    if unit:
        base = {
            "enabled": True,
            "module": "ip-adapter-auto",
            "model": "ip-adapter_sd15",
            "image": _png(_picture(picture)),
        }
        body["alwayson_scripts"] = {"controlnet": {"args": [{**base, **unit}]}}
    return post_txt2img(client, body, status)


@pytest.mark.parametrize("model", ["ip-adapter_sd15", "ip-adapter-plus_sd15"])
def test_the_picture_steers_the_image_and_weight_zero_does_nothing(client, model):
    plain = _pixels(_job(client)["images"][0])
    result = _job(client, model=model, weight=1.0)
    assert len(result["images"]) == 1  # no detected map: IP-Adapter preprocessors make none
    first = _pixels(result["images"][0])
    other = _pixels(_job(client, model=model, picture=1)["images"][0])
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, other)  # another picture, another image
    np.testing.assert_array_equal(_pixels(_job(client, model=model, weight=0.0)["images"][0]), plain)
    info = json.loads(result["info"])["infotexts"][0]
    assert f'ControlNet 0: "Module: ip-adapter-auto, Model: {model} [' in info


def test_the_encoder_can_be_named_and_the_guidance_window_applies(client):
    auto = _pixels(_job(client, weight=1.0)["images"][0])
    named = _pixels(_job(client, module="ip-adapter_clip_h", weight=1.0)["images"][0])
    np.testing.assert_array_equal(named, auto)  # auto picked the same ViT-H file
    late = _pixels(_job(client, guidance_start=0.5)["images"][0])
    assert not np.array_equal(late, auto)


def test_a_missing_encoder_names_the_file_the_folders_and_the_download(client):
    detail = _job(client, 400, module="ip-adapter_clip_g")["detail"]
    assert "clip_g.pth" in detail and "clip_vision" in detail and "huggingface.co" in detail


def test_mismatched_preprocessors_and_previews_say_what_to_use(client):
    assert "ip-adapter-auto" in _job(client, 400, module="canny")["detail"]
    response = client.post(
        "/controlnet/detect",
        json={"controlnet_module": "ip-adapter_clip_h", "controlnet_input_images": [_png(_picture(0))]},
    )
    assert response.status_code == 400 and "nothing to preview" in response.json()["detail"]


def test_control_types_list_each_type_s_preprocessors_models_and_defaults(client):
    types = client.get("/controlnet/control_types").json()["control_types"]
    assert list(types)[0] == "All" and types["All"]["default_option"] == "none"
    ip = types["IP-Adapter"]
    assert ip["default_option"] == "ip-adapter-auto" and ip["module_list"][0] == "none"
    assert [m.split(" [")[0] for m in ip["model_list"]] == ["None", "ip-adapter-plus_sd15", "ip-adapter_sd15"]
    assert types["T2I-Adapter"]["default_model"].startswith("t2iadapter_style_sd14v1 [")
    assert types["Reference"] == {
        "module_list": ["none", "reference_only", "reference_adain+attn", "reference_adain"],
        "model_list": ["None"],
        "default_option": "reference_only",
        "default_model": "None",
    }


def test_ip_adapters_and_their_preprocessors_are_listed(client):
    models = client.get("/controlnet/model_list").json()["model_list"]
    assert any(m.startswith("ip-adapter_sd15 [") for m in models)
    assert any(m.startswith("ip-adapter-plus_sd15 [") for m in models)
    modules = client.get("/controlnet/module_list?alias_names=true").json()["module_list"]
    assert {"ip-adapter-auto", "ip-adapter_clip_h", "ip-adapter_clip_g"} <= set(modules)


def test_an_encoder_in_models_clip_vision_is_found_by_its_name(app, client):
    folder = app.paths.models_dir / "clip_vision"
    path = write_clip_vision(folder / "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors", tiny_clip_vision(4))
    try:
        named = _pixels(_job(client, module="ip-adapter_clip_g", weight=1.0)["images"][0])
        np.testing.assert_array_equal(named, _pixels(_job(client, weight=1.0)["images"][0]))  # same weights
    finally:
        path.unlink()


def test_hires_fix_and_img2img_take_ip_adapter_units(client):
    unit = {
        "enabled": True,
        "module": "ip-adapter-auto",
        "model": "ip-adapter_sd15",
        "image": _png(_picture(0)),
    }
    scripts = {"controlnet": {"args": [unit]}}
    hires = {**BODY, "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    body = {**hires, "override_settings": {"sd_model_checkpoint": "tiny_ip"}}
    plain = _pixels(post_txt2img(client, body)["images"][0])
    steered = _pixels(post_txt2img(client, {**body, "alwayson_scripts": scripts})["images"][0])
    assert steered.shape == (96, 96, 3) and not np.array_equal(steered, plain)
    init = {**BODY, "init_images": [_png(_picture(2))], "denoising_strength": 0.6}
    init["override_settings"] = {"sd_model_checkpoint": "tiny_ip"}
    without_image = {k: v for k, v in unit.items() if k != "image"}  # the init image is the picture
    response = client.post(
        "/sdapi/v1/img2img", json={**init, "alwayson_scripts": {"controlnet": {"args": [without_image]}}}
    )
    assert response.status_code == 200, response.text
    plain_i2i = client.post("/sdapi/v1/img2img", json=init).json()["images"][0]
    assert not np.array_equal(_pixels(response.json()["images"][0]), _pixels(plain_i2i))


def test_a_unit_mask_hides_parts_of_the_picture_from_clip(client):
    whole = _pixels(_job(client, weight=1.0)["images"][0])
    black = np.zeros((96, 96), np.uint8)  # nothing hidden
    np.testing.assert_array_equal(_pixels(_job(client, weight=1.0, mask=_png(black))["images"][0]), whole)
    half = black.copy()
    half[:, :48] = 255
    assert not np.array_equal(_pixels(_job(client, weight=1.0, mask=_png(half))["images"][0]), whole)


def test_the_t2i_style_adapter_reads_clip_vit_l_and_steers_the_image(app, client):
    style = {"model": "t2iadapter_style_sd14v1", "module": "t2ia_style_clipvision"}
    detail = _job(client, 400, **style)["detail"]
    assert "clip_vitl.pth" in detail and "openai/clip-vit-large-patch14" in detail
    write_clip_vision(
        app.paths.controlnet_dir / "annotators" / "clip_vision" / "clip_vitl.pth", tiny_clip_vision(5)
    )
    plain = _pixels(_job(client)["images"][0])
    steered = _job(client, **style)
    assert len(steered["images"]) == 1  # no detected map
    first = _pixels(steered["images"][0])
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, _pixels(_job(client, picture=1, **style)["images"][0]))
    assert (
        "t2ia_style_clipvision"
        in _job(client, 400, model="t2iadapter_style_sd14v1", module="canny")["detail"]
    )


def test_merge_averages_the_pictures_of_an_ip_adapter_unit(client):
    def merged(*seeds: int) -> np.ndarray:
        pictures = [{"image": _png(_picture(s))} for s in seeds]
        return _pixels(_job(client, weight=1.0, input_mode="merge", image=pictures)["images"][0])

    single = _pixels(_job(client, weight=1.0)["images"][0])
    np.testing.assert_array_equal(merged(0, 0), single)  # the mean of one picture twice is that picture
    both = merged(0, 1)
    assert not np.array_equal(both, single)
    assert not np.array_equal(both, _pixels(_job(client, weight=1.0, picture=1)["images"][0]))


def test_block_weights_and_a_region_mask_limit_the_picture_and_bad_ones_are_a_400(client):
    """The tiny UNet has 4 transformer blocks (down, middle, two up)."""
    full = _pixels(_job(client, weight=0.9)["images"][0])
    plain = _pixels(_job(client)["images"][0])
    np.testing.assert_array_equal(
        _pixels(_job(client, weight=0.2, advanced_weighting=[0.9] * 4)["images"][0]), full
    )
    np.testing.assert_array_equal(_pixels(_job(client, advanced_weighting=[0, 0, 0, 0])["images"][0]), plain)
    some = _pixels(_job(client, advanced_weighting=[0, 0, 0.9, 0.9])["images"][0])
    assert not np.array_equal(some, full) and not np.array_equal(some, plain)
    assert "4 transformer blocks" in _job(client, 400, advanced_weighting=[1.0] * 16)["detail"]
    assert "weights from 0" in _job(client, 400, advanced_weighting=[1, -1, 1, 1])["detail"]
    black = np.zeros((16, 16, 3), np.uint8)
    np.testing.assert_array_equal(
        _pixels(_job(client, weight=0.9, effective_region_mask=_png(black))["images"][0]), plain
    )
    top = black.copy()
    top[:8] = 255
    limited = _pixels(_job(client, weight=0.9, effective_region_mask=_png(top))["images"][0])
    assert not np.array_equal(limited, full) and not np.array_equal(limited, plain)


def test_reference_and_style_units_refuse_level_weights_and_region_masks(client):
    white = _png(np.full((16, 16, 3), 255, np.uint8))
    reference = _job(client, 400, module="reference_only", model="None", effective_region_mask=white)
    assert "effective_region_mask works with ControlNets" in reference["detail"]
    style = _job(
        client, 400, module="t2ia_style_clipvision", model="t2iadapter_style_sd14v1", advanced_weighting=[1.0]
    )
    assert "advanced_weighting works with ControlNets" in style["detail"]


def test_faceid_reads_the_largest_face_with_insightface_models_from_the_annotator_folder(client, app):
    from tests.fixtures.tiny_insightface import face_picture, write_buffalo_l
    from tests.fixtures.tiny_models import tiny

    unet = tiny("SD1", seed=2)["unet"]  # the tiny_ip checkpoint's layout
    write_ip_adapter(
        app.paths.controlnet_dir / "ip-adapter-faceid_sd15.bin", ip_adapter_state(unet, "faceid", 6)
    )
    app.controlnet.models.refresh()
    unit = {"module": "ip-adapter_face_id", "model": "ip-adapter-faceid_sd15", "image": _png(face_picture())}
    missing = _job(client, 400, **unit)["detail"]
    assert "det_10g.onnx, w600k_r50.onnx" in missing and "buffalo_l.zip" in missing
    write_buffalo_l(app.paths.controlnet_dir / "annotators")
    plain = _pixels(_job(client)["images"][0])
    result = _job(client, **unit)
    assert not np.array_equal(_pixels(result["images"][0]), plain)
    assert (
        'ControlNet 0: "Module: ip-adapter_face_id, Model: ip-adapter-faceid_sd15 ['
        in json.loads(result["info"])["infotexts"][0]
    )
    faceless = _job(client, 400, **{**unit, "image": _png(np.full((96, 96, 3), 20, np.uint8))})
    assert "found no face" in faceless["detail"]
    auto = _pixels(_job(client, **{**unit, "module": "ip-adapter-auto"})["images"][0])  # auto: what it reads
    np.testing.assert_array_equal(auto, _pixels(result["images"][0]))
    clip = _job(client, 400, **{**unit, "module": "ip-adapter_clip_h"})
    assert "FaceID IP-Adapter" in clip["detail"] and "ip-adapter_face_id" in clip["detail"]
    wrong = _job(client, 400, module="ip-adapter_face_id", image=_png(face_picture()))
    assert "reads CLIP image features, not face embeddings" in wrong["detail"]


def test_faceid_plus_reads_the_face_and_the_pictures_clip_states(client, app):
    from tests.fixtures.tiny_insightface import face_picture, write_buffalo_l
    from tests.fixtures.tiny_models import tiny

    unet = tiny("SD1", seed=2)["unet"]
    for name, seed in (("ip-adapter-faceid-plus_sd15.bin", 7), ("ip-adapter-faceid-plusv2_sd15.bin", 7)):
        write_ip_adapter(app.paths.controlnet_dir / name, ip_adapter_state(unet, "faceid_plus", seed))
    write_buffalo_l(app.paths.controlnet_dir / "annotators")
    app.controlnet.models.refresh()
    face = face_picture()
    unit = {"module": "ip-adapter_face_id_plus", "model": "ip-adapter-faceid-plus_sd15", "image": _png(face)}
    plain = _pixels(_job(client)["images"][0])
    result = _job(client, **unit)
    first = _pixels(result["images"][0])
    assert not np.array_equal(first, plain)
    assert "Module: ip-adapter_face_id_plus" in json.loads(result["info"])["infotexts"][0]
    # the whole picture's CLIP states count: the same face on another background draws another image
    framed = face.copy()
    framed[:8] = 255 - framed[:8]
    assert not np.array_equal(_pixels(_job(client, **{**unit, "image": _png(framed)})["images"][0]), first)
    # v2 (told by its name) adds the face tokens to the output: this tiny file's widths differ (64 / 32)
    v2 = _job(client, 400, **{**unit, "model": "ip-adapter-faceid-plusv2_sd15"})["detail"]
    assert "v2's shortcut cannot add them" in v2
    auto = _pixels(_job(client, **{**unit, "module": "ip-adapter-auto"})["images"][0])
    np.testing.assert_array_equal(auto, first)
    face_only = _job(client, 400, **{**unit, "module": "ip-adapter_face_id"})["detail"]
    assert "FaceID Plus IP-Adapter" in face_only and "ip-adapter_face_id_plus" in face_only
    clip = _job(client, 400, **{**unit, "module": "ip-adapter_clip_h"})["detail"]
    assert "ip-adapter_face_id_plus" in clip
    wrong = _job(client, 400, **{**unit, "model": "ip-adapter_sd15"})["detail"]
    assert "ip-adapter_face_id_plus is for FaceID Plus" in wrong
    faceless = _job(client, 400, **{**unit, "image": _png(np.full((96, 96, 3), 20, np.uint8))})
    assert "found no face" in faceless["detail"]


def test_instant_id_runs_as_the_extensions_two_units_and_refuses_them_apart(client, app):
    """Unit 0: instant_id_face_embedding with InstantID's IP-Adapter; unit 1: instant_id_face_keypoints
    with its ControlNet, which reads unit 0's face tokens as its text (the extension's pairing)."""
    from tests.fixtures.tiny_controlnets import tiny_controlnet, write_lllyasviel
    from tests.fixtures.tiny_insightface import face_picture, write_antelopev2
    from tests.fixtures.tiny_models import tiny

    unet = tiny("SD1", seed=2)["unet"]
    folder = app.paths.controlnet_dir
    write_ip_adapter(folder / "ip-adapter_instant_id_tiny.bin", ip_adapter_state(unet, "instantid", 9))
    write_lllyasviel(
        folder / "control_instant_id_tiny.safetensors", tiny_controlnet("SD1", seed=2)["controlnet"]
    )
    app.controlnet.models.refresh()
    face = _png(face_picture())
    embedding = {"module": "instant_id_face_embedding", "model": "ip-adapter_instant_id_tiny", "image": face}
    keypoints = {"module": "instant_id_face_keypoints", "model": "control_instant_id_tiny", "image": face}

    def job(status, *units):
        body = {**BODY, "override_settings": {"sd_model_checkpoint": "tiny_ip"}}
        body["alwayson_scripts"] = {"controlnet": {"args": [{"enabled": True, **u} for u in units]}}
        return post_txt2img(client, body, status)

    missing = job(400, embedding, keypoints)["detail"]
    assert "InstantID needs InsightFace's antelopev2 models (scrfd_10g_bnkps.onnx, glintr100.onnx)" in missing
    write_antelopev2(folder / "annotators")
    plain = _pixels(_job(client)["images"][0])
    result = job(200, embedding, keypoints)
    assert len(result["images"]) == 2  # the image and unit 1's keypoint map
    first = _pixels(result["images"][0])
    assert not np.array_equal(first, plain)
    drawn = _pixels(result["images"][1])
    assert drawn.max() == 255 and (drawn == 0).all(axis=-1).mean() > 0.9  # discs on black
    infotext = json.loads(result["info"])["infotexts"][0]
    assert "Module: instant_id_face_keypoints, Model: control_instant_id_tiny" in infotext
    assert not np.array_equal(_pixels(job(200, embedding)["images"][0]), first)  # the ControlNet counts
    out_of_order = job(400, keypoints, embedding)["detail"]
    assert (
        out_of_order.startswith("ControlNet unit 0: control_instant_id_tiny")
        and "right before it" in out_of_order
    )
    assert "must come right before it" in job(400, keypoints)["detail"]
    wrong_module = job(400, {**embedding, "module": "ip-adapter_face_id"}, keypoints)["detail"]
    assert "choose the instant_id_face_embedding preprocessor" in wrong_module
    wrong_model = job(400, {**embedding, "model": "ip-adapter_sd15"})["detail"]
    assert "instant_id_face_embedding is for InstantID's IP-Adapter" in wrong_model
    auto = job(200, {**embedding, "module": "ip-adapter-auto"}, keypoints)
    np.testing.assert_array_equal(_pixels(auto["images"][0]), first)
    # hires: the IP-Adapter unit "Low res only", its ControlNet in both passes: the ControlNet still reads
    # the face tokens in the hires pass (the extension's behaviour), the adapter itself sits it out
    hires = {"enable_hr": True, "hr_upscaler": "Nearest", "denoising_strength": 0.5}
    body = {**BODY, **hires, "override_settings": {"sd_model_checkpoint": "tiny_ip"}}
    for option in ("Low res only", "High res only", "Both"):
        units = [{"enabled": True, **embedding, "hr_option": option}, {"enabled": True, **keypoints}]
        body["alwayson_scripts"] = {"controlnet": {"args": units}}
        assert len(post_txt2img(client, body, 200)["images"]) == 2
    detect = client.post(
        "/controlnet/detect",
        json={"controlnet_module": "instant_id_face_keypoints", "controlnet_input_images": [face]},
    )
    assert detect.status_code == 200, detect.text
    assert (
        "nothing to preview"
        in client.post(
            "/controlnet/detect",
            json={"controlnet_module": "instant_id_face_embedding", "controlnet_input_images": [face]},
        ).json()["detail"]
    )


def test_revision_takes_the_pictures_clip_g_embedding_on_sdxl_and_ignore_prompt_drops_the_text(client, app):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    components = write_tiny_checkpoint(app.paths.ckpt_dirs[0] / "tiny_xl_rev.safetensors", "SDXL", seed=3)
    app.checkpoints.refresh()
    pooled_width = components["text_encoders"][1].config.projection_dim
    config = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, projection_dim=pooled_width, num_hidden_layers=2,
        num_attention_heads=1, image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-5,
    )  # fmt: skip
    torch.manual_seed(1)
    write_clip_vision(
        app.paths.controlnet_dir / "annotators" / "clip_vision" / "clip_g.pth",
        CLIPVisionModelWithProjection(config).eval(),
    )

    def job(status=200, prompt="a fox", **unit):
        body = {**BODY, "prompt": prompt, "override_settings": {"sd_model_checkpoint": "tiny_xl_rev"}}
        if unit:
            unit = {"enabled": True, "model": "None", "image": _png(_picture(0)), **unit}
            body["alwayson_scripts"] = {"controlnet": {"args": [unit]}}
        return post_txt2img(client, body, status)

    plain = _pixels(job()["images"][0])
    np.testing.assert_array_equal(_pixels(job()["images"][0]), plain)
    revised = job(module="revision_clipvision")
    assert not np.array_equal(_pixels(revised["images"][0]), plain)
    assert "Module: revision_clipvision" in json.loads(revised["info"])["infotexts"][0]
    again = _pixels(job(module="revision_clipvision")["images"][0])
    np.testing.assert_array_equal(again, _pixels(revised["images"][0]))  # the augmentation noise is seeded
    ignoring = [
        _pixels(job(prompt=p, module="revision_ignore_prompt")["images"][0]) for p in ("a fox", "a ship")
    ]
    np.testing.assert_array_equal(ignoring[0], ignoring[1])  # the prompt no longer counts
    noisy = _pixels(job(module="revision_clipvision", threshold_a=0.9)["images"][0])
    assert not np.array_equal(noisy, _pixels(revised["images"][0]))
    sd1 = _job(client, 400, module="revision_clipvision", model="None")["detail"]
    assert "only supports SDXL" in sd1
