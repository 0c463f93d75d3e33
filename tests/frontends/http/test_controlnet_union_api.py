"""ControlNet Union through the API on an SDXL checkpoint: the preprocessor's kind chooses the control type
(or the unit's `union_control_type` does), and a unit the model cannot serve is a clear 400."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.app_support import post_txt2img
from tests.fixtures.tiny_controlnets import save_state_dict, shapes_image, tiny_union
from tests.fixtures.tiny_models import write_tiny_checkpoint

BODY = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("union")
    app = make_module_app(data, "--nowebui")
    components = write_tiny_checkpoint(app.paths.ckpt_dirs[0] / "tiny_xl.safetensors", "SDXL", seed=2)
    app.checkpoints.refresh()
    union = tiny_union(components["unet"], 13)
    state = {k: v.detach().clone().contiguous() for k, v in union.state_dict().items()}
    save_state_dict(app.paths.controlnet_dir / "controlnet-union-sdxl-tiny.safetensors", state)
    app.controlnet.models.refresh()
    return app


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


def _job(client, status: int = 200, **unit) -> dict:
    body = {**BODY, "override_settings": {"sd_model_checkpoint": "tiny_xl"}}
    if unit:
        base = {"enabled": True, "model": "controlnet-union-sdxl-tiny", "image": _png(shapes_image(64))}
        body["alwayson_scripts"] = {"controlnet": {"args": [{**base, "processor_res": 64, **unit}]}}
    return post_txt2img(client, body, status)


def test_a_union_unit_takes_its_control_type_from_the_preprocessor_or_the_unit(client):
    plain = _pixels(_job(client)["images"][0])
    canny = _pixels(_job(client, module="canny")["images"][0])
    hard_edge = _pixels(_job(client, module="none", union_control_type="Hard Edge")["images"][0])
    depth = _pixels(_job(client, module="none", union_control_type="Depth")["images"][0])
    assert not np.array_equal(canny, plain)
    assert not np.array_equal(hard_edge, depth)  # the control type changes what the model does
    same_type = _pixels(_job(client, module="canny", union_control_type="Hard Edge")["images"][0])
    np.testing.assert_array_equal(same_type, canny)  # canny's kind is Hard Edge


def test_a_union_unit_without_a_type_or_with_one_the_model_lacks_is_refused(client):
    detail = _job(client, 400, module="shuffle")["detail"]
    assert "ControlNet Union model" in detail and "union_control_type" in detail
    assert (
        "takes control types 0..5" in _job(client, 400, module="none", union_control_type="Inpaint")["detail"]
    )
    assert "union_control_type" in _job(client, 400, module="canny", union_control_type="Sparkles")["detail"]
