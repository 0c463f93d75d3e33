"""Reference-only control through the A1111 API: the extension's `reference_only`, `reference_adain`,
`reference_adain+attn` units need no model, steer txt2img, img2img and hires fix, and their style
fidelity slider and control modes reach the engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.app_support import decode_pixels, encode_png, post_txt2img

BODY = {"prompt": "a fox", "steps": 3, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("reference"), "--nowebui")


def _png(array: np.ndarray) -> str:
    return encode_png(Image.fromarray(array))


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))


_pixels = decode_pixels


def _job(client, status: int = 200, body=None, **unit) -> dict:
    body = dict(body or BODY)
    if unit:
        base = {"enabled": True, "module": "reference_only", "image": _png(_picture(unit.pop("picture", 0)))}
        body["alwayson_scripts"] = {"controlnet": {"args": [{**base, **unit}]}}
    return post_txt2img(client, body, status)


@pytest.mark.parametrize("module", ["reference_only", "reference_adain", "reference_adain+attn"])
def test_a_reference_unit_without_a_model_steers_the_image(client, module):
    plain = _pixels(_job(client)["images"][0])
    result = _job(client, module=module)
    first = _pixels(result["images"][0])
    assert not np.array_equal(first, plain)
    assert not np.array_equal(first, _pixels(_job(client, module=module, picture=1)["images"][0]))
    assert len(result["images"]) == 2  # the detected map is the picture, as the extension shows it
    info = json.loads(result["info"])["infotexts"][0]
    assert f'ControlNet 0: "Module: {module}, Model: None' in info


def test_style_fidelity_and_control_modes_change_the_negative_rows(client):
    half = _pixels(_job(client, threshold_a=0.5)["images"][0])
    assert not np.array_equal(half, _pixels(_job(client, threshold_a=0.0)["images"][0]))
    np.testing.assert_array_equal(_pixels(_job(client, threshold_a=-1)["images"][0]), half)  # default 0.5
    prompt_first = _pixels(
        _job(client, threshold_a=0.9, control_mode="My prompt is more important")["images"][0]
    )
    np.testing.assert_array_equal(
        prompt_first, _pixels(_job(client, threshold_a=0.0)["images"][0])
    )  # fidelity 0
    control_first = _pixels(_job(client, control_mode="ControlNet is more important")["images"][0])
    np.testing.assert_array_equal(control_first, _pixels(_job(client, threshold_a=1.0)["images"][0]))
    np.testing.assert_array_equal(
        _pixels(_job(client, weight=0.0)["images"][0]), _pixels(_job(client)["images"][0])
    )


def test_hires_fix_and_img2img_take_reference_units(client):
    hires = {**BODY, "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    steered = _pixels(_job(client, body=hires, module="reference_only")["images"][0])
    assert steered.shape == (96, 96, 3)
    assert not np.array_equal(steered, _pixels(post_txt2img(client, hires)["images"][0]))
    init = {**BODY, "init_images": [_png(_picture(2))], "denoising_strength": 0.6}
    unit = {"enabled": True, "module": "reference_adain+attn"}  # no image: the init image is the reference
    response = client.post(
        "/sdapi/v1/img2img", json={**init, "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    )
    assert response.status_code == 200, response.text
    plain = client.post("/sdapi/v1/img2img", json=init).json()["images"][0]
    assert not np.array_equal(_pixels(response.json()["images"][0]), _pixels(plain))


def test_reference_modules_are_listed_with_their_slider_and_preview_the_picture(client):
    detail = client.get("/controlnet/module_list").json()["module_detail"]["reference_only"]
    assert detail["sliders"][0]["name"].startswith("Style Fidelity") and detail["sliders"][0]["value"] == 0.5
    response = client.post(
        "/controlnet/detect",
        json={"controlnet_module": "reference_adain", "controlnet_input_images": [_png(_picture(0))]},
    )
    assert response.status_code == 200
    np.testing.assert_array_equal(_pixels(response.json()["images"][0]), _picture(0))
