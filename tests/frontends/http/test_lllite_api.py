"""ControlNet-LLLite through the A1111 API: a kohya file in models/ControlNet is listed, runs as a unit
with a preprocessor, is left out of a hires pass (as the extension leaves it), and a file for another
model is a 400 before sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.app_support import decode_pixels, encode_png, post_txt2img
from tests.fixtures.tiny_controlnets import shapes_image
from tests.fixtures.tiny_lllite import lllite_module_state, tiny_lllite_state, write_lllite
from tests.fixtures.tiny_models import write_tiny_checkpoint

BODY = {"prompt": "a fox", "steps": 3, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("lllite"), "--nowebui")
    write_tiny_checkpoint(app.paths.ckpt_dirs[0] / "tiny_lllite.safetensors", "SD1", seed=2)
    app.checkpoints.refresh()
    write_lllite(app.paths.controlnet_dir / "controllllite_tiny_canny.safetensors", tiny_lllite_state(seed=3))
    wide = lllite_module_state("lllite_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q", 1, 320)
    write_lllite(app.paths.controlnet_dir / "controllllite_wide.safetensors", wide)
    app.controlnet.models.refresh()
    return app


def _job(client, status: int = 200, body: dict | None = None, **unit) -> dict:
    body = {**BODY, "override_settings": {"sd_model_checkpoint": "tiny_lllite"}, **(body or {})}
    if unit:
        base = {
            "enabled": True,
            "module": "canny",
            "model": "controllllite_tiny_canny",
            "image": encode_png(Image.fromarray(shapes_image())),
        }
        body["alwayson_scripts"] = {"controlnet": {"args": [{**base, **unit}]}}
    return post_txt2img(client, body, status)


def test_an_lllite_file_is_listed_and_steers_the_image(client):
    names = client.get("/controlnet/model_list").json()["model_list"]
    assert any(n.startswith("controllllite_tiny_canny [") for n in names)
    plain = decode_pixels(_job(client)["images"][0])
    result = _job(client, weight=1.0)
    assert len(result["images"]) == 2  # the image and the canny map
    assert not np.array_equal(decode_pixels(result["images"][0]), plain)
    np.testing.assert_array_equal(decode_pixels(_job(client, weight=0.0)["images"][0]), plain)
    info = json.loads(result["info"])["infotexts"][0]
    assert 'ControlNet 0: "Module: canny, Model: controllllite_tiny_canny [' in info


def test_a_file_for_another_unet_and_level_settings_are_refused(client):
    wrong = _job(client, 400, model="controllllite_wide")
    assert "it is for another model" in wrong["detail"]
    weighted = _job(client, 400, advanced_weighting=[1.0])
    assert "advanced_weighting works with ControlNets" in weighted["detail"]


def test_the_hires_pass_is_left_alone_as_the_extension_leaves_it(client):
    hires = {"enable_hr": True, "hr_upscaler": "Nearest", "denoising_strength": 0.6, "hr_scale": 1.5}
    both = decode_pixels(_job(client, body=hires, hr_option="Both")["images"][0])
    low = decode_pixels(_job(client, body=hires, hr_option="Low res only")["images"][0])
    plain = decode_pixels(_job(client, body=hires)["images"][0])
    np.testing.assert_array_equal(both, low)  # the second pass never had it
    assert both.shape == (96, 96, 3) and not np.array_equal(both, plain)  # the first pass did
