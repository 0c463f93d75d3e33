"""Through the API, non-finite output is a clear JSON error or a refused network, never a black image."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import write_filled_checkpoint as write_checkpoint

UNET_OUT = "model.diffusion_model.out.2.weight"  # the UNet's last conv
BODY = {"prompt": "a red fox", "steps": 2, "width": 64, "height": 64, "seed": 9, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("nan_api")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_checkpoint(folder / "a_good.safetensors")
    write_checkpoint(folder / "overflowing.safetensors", **{UNET_OUT: 1e38})  # finite, overflows at run
    app = make_module_app(data, "--api", "--nowebui", loaded=True)
    good = load_checkpoint(folder / "a_good.safetensors")
    components = {"family": "SD1", "unet": good.unet, "text_encoders": [s.model for s in good.text_encoders]}
    state = tn.lora_state_dict(components)
    for key in state:
        if key.endswith(("lora_up.weight", "lora_down.weight")):
            state[key] = torch.full_like(state[key], 1e30)
    tn.save(app.paths.lora_dir / "huge.safetensors", state)
    app.loras.refresh()
    return app


def test_nan_after_the_unet_is_a_json_error_with_a1111s_message(client):
    body = post_txt2img(client, {**BODY, "override_settings": {"sd_model_checkpoint": "overflowing"}}, 400)
    assert body["error"] == "NansException"
    assert body["detail"].startswith("A tensor with all NaNs was produced in Unet for the image with seed 9.")
    assert "--disable-nan-check" in body["detail"] and "images" not in body


def test_lora_with_1e30_values_is_refused_with_a_warning_and_the_image_is_the_plain_one(client):
    plain = post_txt2img(client, BODY)
    with_huge = post_txt2img(client, {**BODY, "prompt": BODY["prompt"] + " <lora:huge:1>"})
    assert (decode_pixels(with_huge["images"][0]) == decode_pixels(plain["images"][0])).all()
    warnings = with_huge["info"]
    assert "Lora refused: " in warnings and "huge.safetensors: its deltas overflow" in warnings
