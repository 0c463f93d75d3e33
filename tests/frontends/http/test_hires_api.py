"""Hires. fix through POST /sdapi/v1/txt2img: the doubled size, firstpass_image, the info JSON, errors."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

SMALL = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def encode(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_enable_hr_with_hr_scale_2_doubles_the_image(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "enable_hr": True, "hr_scale": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert decode(body["images"][0]).size == (128, 128)
    info = json.loads(body["info"])
    assert (info["width"], info["height"], info["denoising_strength"]) == (64, 64, 0.75)  # A1111: first pass
    assert info["extra_generation_params"]["Hires upscale"] == 2.0
    assert "Hires upscale: 2.0" in info["infotexts"][0] and "Denoising strength: 0.75" in info["infotexts"][0]
    plain = client.post("/sdapi/v1/txt2img", json=SMALL).json()
    assert (
        decode(plain["images"][0]).size == (64, 64)
        and "Hires" not in json.loads(plain["info"])["infotexts"][0]
    )


def test_firstpass_image_is_upscaled_by_the_hires_pass_only(client):
    first = decode(client.post("/sdapi/v1/txt2img", json=SMALL).json()["images"][0])
    body = {**SMALL, "enable_hr": True, "hr_upscaler": "Lanczos", "firstpass_image": encode(first)}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    assert decode(r.json()["images"][0]).size == (128, 128)
    assert "Hires upscaler: Lanczos" in json.loads(r.json()["info"])["infotexts"][0]
    assert r.json()["parameters"]["firstpass_image"] == body["firstpass_image"]


def test_hires_resize_sampler_and_prompts_through_the_api(client):
    body = {
        **SMALL, "enable_hr": True, "hr_resize_x": 96, "hr_resize_y": 0, "hr_sampler_name": "Euler a",
        "hr_scheduler": "Karras", "hr_second_pass_steps": 3, "hr_prompt": "a fox at night", "hr_cfg": 4.5,
    }  # fmt: skip
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    assert decode(r.json()["images"][0]).size == (96, 96)
    text = json.loads(r.json()["info"])["infotexts"][0]
    for part in ("Hires resize: 96x0", "Hires sampler: Euler a", "Hires schedule type: Karras",
                 "Hires steps: 3", "Hires prompt: a fox at night", "Hires CFG Scale: 4.5"):  # fmt: skip
        assert part in text, part


def test_the_schema_has_a1111s_hires_fields(client):
    props = client.get("/openapi.json").json()["components"]["schemas"][
        "StableDiffusionTxt2ImgProcessingAPI"
    ]["properties"]
    for name in ("enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y",
                 "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt",
                 "firstphase_width", "firstphase_height", "firstpass_image", "denoising_strength"):  # fmt: skip
        assert name in props, name
    assert props["denoising_strength"]["default"] == 0.75 and props["hr_scale"]["default"] == 2.0
    assert "hr_upscale_to_x" not in props and "all_hr_prompts" not in props


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hr_upscaler": "R-ESRGAN 9x"}, "not found"),
        ({"hr_checkpoint_name": "no such model"}, "Could not find checkpoint"),
        ({"hr_scale": 64}, "max_image_size"),
        ({"firstpass_image": "bm90IGFuIGltYWdl"}, "firstpass_image"),
    ],
)
def test_bad_hires_values_are_400s_with_a_message(client, change, words):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "enable_hr": True, **change})
    assert r.status_code == 400, r.text
    assert words in r.text
    assert client.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200


@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_a_batch_gets_one_hires_pass_per_image_with_its_own_seed(client, upscaler):
    body = {**SMALL, "enable_hr": True, "hr_upscaler": upscaler, "batch_size": 2}
    r = client.post("/sdapi/v1/txt2img", json=body)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    images = [decode(b64) for b64 in r.json()["images"][info["index_of_first_image"] :]]
    assert [image.size for image in images] == [(128, 128)] * 2
    assert images[0].tobytes() != images[1].tobytes() and info["all_seeds"] == [1234, 1235]
