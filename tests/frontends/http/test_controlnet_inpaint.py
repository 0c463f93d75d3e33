"""ControlNet's inpaint preprocessors as sd-webui-controlnet has them: `inpaint` (inpaint_global_harmonious),
`inpaint_only` and `inpaint_only+lama`, with the img2img job's mask or a unit's own mask: masked pixels
of the control image reach the ControlNet as -1, `inpaint_only` blends the result back with the control
image outside the mask, and `inpaint_only+lama` fills the mask with LaMa first (a clear 400 without its
weights)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from modules.sumi.services.controlnet.service import Target
from modules.sumi.services.controlnet.units import unit_from_dict
from modules.sumi.services.jobs import img2img
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from tests.app_support import post_txt2img
from tests.fixtures import tiny_upscalers
from tests.fixtures.tiny_controlnets import write_lllyasviel
from tests.fixtures.tiny_models import jitter

SIZE = 64
BODY = {"steps": 2, "width": SIZE, "height": SIZE, "seed": 5, "sampler_name": "Euler", "prompt": "a fox"}


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _decode(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


def _picture() -> np.ndarray:
    """A textured picture, so that "equals the original" cannot hold by chance."""
    return np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _left_mask(width: int = 24) -> np.ndarray:
    """White (redraw) on the left `width` columns."""
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[:, :width] = 255
    return mask


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("cn-inpaint"), "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    write_lllyasviel(
        app.paths.controlnet_dir / "control_tiny_inpaint.safetensors",
        jitter(ControlNetModel.from_unet(demo.unet), 7),
    )
    app.controlnet.models.refresh()
    app.demo_sd = demo
    return app


def _unit(**kw) -> dict:
    return {"enabled": True, "module": "inpaint_only", "model": "control_tiny_inpaint", **kw}


def _img2img(client, body: dict, *units, status: int = 200) -> dict:
    payload = {**BODY, "denoising_strength": 0.75, **body}
    if units:
        payload["alwayson_scripts"] = {"ControlNet": {"args": list(units)}}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == status, r.text
    return r.json()


def test_module_list_has_the_inpaint_preprocessors(client):
    modules = client.get("/controlnet/module_list").json()
    assert {"inpaint", "inpaint_only", "inpaint_only+lama"} <= set(modules["module_list"])
    labels = client.get("/controlnet/module_list", params={"alias_names": True}).json()["module_list"]
    assert {"inpaint_global_harmonious", "inpaint_only", "inpaint_only+lama"} <= set(labels)


def test_inpaint_control_image_has_minus_one_in_the_masked_pixels(app):
    picture, mask = _picture(), _left_mask()
    unit = unit_from_dict(_unit(image={"image": _png_b64(picture), "mask": _png_b64(mask)}))
    prepared = app.controlnet.prepare([unit], app.demo_sd, Target(SIZE, SIZE, 1))
    hint = prepared.units[0].image[0].float().cpu().numpy()  # (3, H, W)
    assert np.all(hint[:, :, :24] == -1)
    assert np.allclose(hint[:, :, 24:], picture[:, 24:].transpose(2, 0, 1) / 255.0, atol=1e-6)
    assert len(prepared.blends) == 1  # inpaint_only blends back; plain `inpaint` would not


def test_the_mask_image_field_is_the_units_mask(app):
    picture, mask = _picture(), _left_mask(10)
    unit = unit_from_dict(_unit(module="inpaint", image=_png_b64(picture), mask_image=_png_b64(mask)))
    prepared = app.controlnet.prepare([unit], app.demo_sd, Target(SIZE, SIZE, 1))
    hint = prepared.units[0].image[0].float().cpu().numpy()
    assert np.all(hint[:, :, :10] == -1) and np.all(hint[:, :, 10:] >= 0)
    assert prepared.blends == []


def test_inpaint_only_with_a_units_mask_keeps_the_control_image_outside_the_mask(client):
    picture = _picture()
    unit = _unit(image={"image": _png_b64(picture), "mask": _png_b64(_left_mask())})
    payload = {**BODY, "alwayson_scripts": {"ControlNet": {"args": [unit]}}}
    result = _decode(post_txt2img(client, payload, 200)["images"][0])
    # the mask grows by the blur sigma (7) and is box-blurred by 7: from column 24 + 7 on nothing of it is left
    assert np.array_equal(result[:, 31:], picture[:, 31:])
    assert not np.array_equal(result[:, :24], picture[:, :24])


def test_inpaint_only_in_img2img_uses_the_jobs_mask_and_keeps_the_original_outside_it(client):
    picture, mask = _picture(), _left_mask()
    body = {"init_images": [_png_b64(picture)], "mask": _png_b64(mask), "mask_blur": 0}
    controlled = _img2img(client, body, _unit())
    plain = _img2img(client, body)
    image = _decode(controlled["images"][0])
    assert np.array_equal(image[:, 24:], picture[:, 24:])
    assert controlled["images"][0] != plain["images"][0]  # the unit acted inside the mask
    explicit = _unit(module="inpaint", image={"image": _png_b64(picture), "mask": _png_b64(mask)})
    assert _img2img(client, body, explicit)["images"][0] == controlled["images"][0]  # the job's mask
    # A1111's overlay already keeps the outside: the extension switches the unit to plain `inpaint`
    assert (
        'ControlNet 0: "Module: inpaint, Model: control_tiny_inpaint ['
        in (json.loads(controlled["info"])["infotexts"][0])
    )


def test_an_inpaint_unit_without_any_mask_is_a_400(client):
    body = {"init_images": [_png_b64(_picture())]}
    r = _img2img(client, body, _unit(), status=400)
    assert "needs a mask" in json.dumps(r)


def test_inpaint_only_lama_without_its_weights_is_a_400_naming_the_file(client, app):
    body = {"init_images": [_png_b64(_picture())], "mask": _png_b64(_left_mask())}
    r = _img2img(client, body, _unit(module="inpaint_only+lama"), status=400)
    text = json.dumps(r)
    assert "lama/ControlNetLama.pth" in text and str(app.controlnet.annotator_dir) in text
    assert client.get("/sdapi/v1/options").status_code == 200  # and the server keeps serving


def test_resize_and_fill_masks_the_padding_so_inpaint_units_outpaint(app):
    wide = _picture()[:32]  # 64x32 into 64x64: 16 rows of padding above and below
    unit = unit_from_dict(
        _unit(
            module="inpaint",
            resize_mode="Resize and Fill",
            image={"image": _png_b64(wide), "mask": _png_b64(np.zeros((32, SIZE), np.uint8))},
        )
    )
    prepared = app.controlnet.prepare([unit], app.demo_sd, Target(SIZE, SIZE, 1))
    hint = prepared.units[0].image[0].float().cpu().numpy()
    assert np.all(hint[:, :16] == -1) and np.all(hint[:, 48:] == -1)
    assert np.all(hint[:, 16:48] >= 0)


def test_only_masked_jobs_give_units_the_crop_region_of_their_image_and_mask():
    picture = _picture()
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:24, 8:24] = 255
    p = StableDiffusionProcessingImg2Img(
        init_images=[Image.fromarray(picture)],
        mask=Image.fromarray(mask),
        mask_blur=0,
        inpaint_full_res=True,
        inpaint_full_res_padding=0,
        width=SIZE,
        height=SIZE,
    )
    cropped = img2img.controlnet_crop(p, picture, 1)
    expected = Image.fromarray(picture[8:24, 8:24]).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    assert np.array_equal(cropped, np.asarray(expected))
    assert np.all(img2img.controlnet_crop(p, mask, 1) > 200)  # the crop is all mask
    p.inpaint_full_res = False
    assert img2img.controlnet_crop(p, picture, 1) is picture


def test_inpaint_only_in_an_only_masked_job_keeps_the_original_outside_the_mask(client):
    picture, mask = _picture(), _left_mask(16)
    body = {
        "init_images": [_png_b64(picture)],
        "mask": _png_b64(mask),
        "mask_blur": 0,
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 4,
    }
    controlled = _img2img(client, body, _unit())
    image = _decode(controlled["images"][0])
    assert np.array_equal(image[:, 16:], picture[:, 16:])
    assert controlled["images"][0] != _img2img(client, body)["images"][0]


def test_inpaint_only_lama_preview_explains_it_runs_in_jobs(tmp_path):
    (tmp_path / "lama").mkdir()
    (tmp_path / "lama" / "ControlNetLama.pth").write_bytes(b"not loaded")
    with pytest.raises(PreprocessorError, match="inside a generation"):
        get_preprocessor("inpaint_only+lama").run(_picture(), annotator_dir=tmp_path)


@pytest.fixture
def lama_file(app):
    path = app.controlnet.annotator_dirs[0] / "lama" / "ControlNetLama.pth"
    tiny_upscalers.write(path, tiny_upscalers.lama(), "state_dict")
    yield path
    path.unlink()


def test_inpaint_only_lama_fills_the_mask_with_lama_and_keeps_the_outside(app, client, lama_file):
    picture, mask = _picture(), _left_mask()
    unit = unit_from_dict(
        _unit(module="inpaint_only+lama", image={"image": _png_b64(picture), "mask": _png_b64(mask)})
    )
    prepared = app.controlnet.prepare([unit], app.demo_sd, Target(SIZE, SIZE, 1))
    filled = prepared.blends[0].images[0]
    assert np.array_equal(filled[:, 24:], picture[:, 24:])  # LaMa painted only under the mask
    assert not np.array_equal(filled[:, :24], picture[:, :24])
    assert prepared.noise_x0 is not None and prepared.noise_x0.shape[-2:] == (SIZE // 8, SIZE // 8)
    hint = prepared.units[0].image[0].float().cpu().numpy()
    assert np.all(hint[:, :, :24] == -1)  # then the unit is inpaint_only

    api_unit = _unit(module="inpaint_only+lama", image={"image": _png_b64(picture), "mask": _png_b64(mask)})
    payload = {**BODY, "alwayson_scripts": {"ControlNet": {"args": [api_unit]}}}
    result = post_txt2img(client, payload, 200)
    image = _decode(result["images"][0])
    assert np.array_equal(image[:, 31:], picture[:, 31:])
    plain = _decode(
        post_txt2img(
            client,
            {**BODY, "alwayson_scripts": {"ControlNet": {"args": [_unit(image=api_unit["image"])]}}},
            200,
        )["images"][0]
    )
    assert not np.array_equal(image[:, :24], plain[:, :24])  # LaMa's colours reach the noise
    assert "Module: inpaint_only+lama" in json.loads(result["info"])["infotexts"][0]


def test_inpaint_only_lama_in_img2img_uses_the_jobs_mask(client, lama_file):
    picture, mask = _picture(), _left_mask()
    body = {"init_images": [_png_b64(picture)], "mask": _png_b64(mask), "mask_blur": 0}
    result = _img2img(client, body, _unit(module="inpaint_only+lama"))
    assert np.array_equal(_decode(result["images"][0])[:, 24:], picture[:, 24:])
    assert (
        result["images"][0] != _img2img(client, body, _unit())["images"][0]
    )  # LaMa's fill made a difference
    assert "Module: inpaint_only+lama" in json.loads(result["info"])["infotexts"][0]
