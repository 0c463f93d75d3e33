"""Tiling through the API (`tiling`, A1111's field) on a real App: the image wraps around its edges, the
infotext says `Tiling: True`, null means the `tiling` setting, and the model's convolutions get their own
padding back after every job, a failing one included."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image
from torch import nn

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import Extension, HookPoint, StepContext, hook
from modules.sumi.services.controlnet.units import ControlNetUnit
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from tests.app_support import with_random_weight_model
from tests.fixtures.tiny_controlnets import shapes_image, write_lllyasviel
from tests.fixtures.tiny_models import jitter

SMALL = {"prompt": "a stone wall", "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler"}
SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with_random_weight_model(data)
    app = make_module_app(data, "--api", "--nowebui", loaded=True)
    demo = app.checkpoints.list()[0].filename
    controlnet = jitter(ControlNetModel.from_unet(load_checkpoint(demo).unet), 5)
    app.paths.controlnet_dir.mkdir(parents=True, exist_ok=True)
    write_lllyasviel(app.paths.controlnet_dir / "control_tiny_canny.safetensors", controlnet)
    app.controlnet.models.refresh()
    return app


def _image(data: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data["images"][0]))).convert("RGB")).astype(
        float
    )


def seams(pixels: np.ndarray) -> tuple[float, float]:
    """(mean difference across the left/right and top/bottom seams, mean difference between neighbours
    inside): a tile that wraps has no seam larger than its inner steps."""
    seam = (np.abs(pixels[:, 0] - pixels[:, -1]).mean() + np.abs(pixels[0] - pixels[-1]).mean()) / 2
    inner = (np.abs(np.diff(pixels, axis=1)).mean() + np.abs(np.diff(pixels, axis=0)).mean()) / 2
    return float(seam), float(inner)


def _convs(app) -> list[nn.Conv2d]:
    sd = app.models.active.sd
    return [m for part in (sd.unet, sd.vae) for m in part.modules() if isinstance(m, nn.Conv2d)]


def test_tiling_wraps_the_image_and_says_so_in_the_infotext(app, client):
    tiled_seams, plain_seams, inner = [], [], []
    for seed in SEEDS:
        tiled = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": seed, "tiling": True}).json()
        plain = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": seed, "tiling": False}).json()
        (seam, step), (plain_seam, _) = seams(_image(tiled)), seams(_image(plain))
        tiled_seams.append(seam)
        plain_seams.append(plain_seam)
        inner.append(step)
        assert parse_infotext(json.loads(tiled["info"])["infotexts"][0])["Tiling"] == "True"
        assert "Tiling" not in parse_infotext(json.loads(plain["info"])["infotexts"][0])
    assert np.mean(tiled_seams) <= 1.1 * np.mean(inner)  # the seam is like any step inside
    assert np.mean(plain_seams) >= 1.15 * np.mean(tiled_seams)  # and clearly smaller than without tiling
    assert {m.padding_mode for m in _convs(app)} == {"zeros"}


def test_null_tiling_is_the_tiling_setting(client):
    body = {**SMALL, "seed": 11, "tiling": None, "override_settings": {"tiling": True}}
    data = client.post("/sdapi/v1/txt2img", json=body).json()
    assert parse_infotext(json.loads(data["info"])["infotexts"][0])["Tiling"] == "True"
    tiled = client.post("/sdapi/v1/txt2img", json={**SMALL, "seed": 11, "tiling": True}).json()
    assert np.array_equal(_image(data), _image(tiled))


def test_tiling_must_be_a_boolean(client):
    r = client.post("/sdapi/v1/txt2img", json={**SMALL, "tiling": "yes"})
    assert r.status_code == 422 and "tiling" in r.text


class LookAt(Extension):
    """Records the padding modes of `convs` at every step; with `fail`, raises at the first one."""

    def __init__(self, convs: list[nn.Conv2d], fail: bool = False) -> None:
        super().__init__()
        self.convs, self.fail, self.seen = convs, fail, set()

    @hook(HookPoint.PRE_STEP)
    def look(self, ctx: StepContext) -> None:
        self.seen |= {m.padding_mode for m in self.convs}
        if self.fail:
            raise RuntimeError("the job fails mid-way")


def test_a_failing_tiled_job_gives_the_model_its_padding_back(app):
    failing = LookAt(_convs(app), fail=True)
    p = StableDiffusionProcessingTxt2Img(**SMALL, seed=3, tiling=True, do_not_save_samples=True)
    p.engine_extensions["fails"] = failing
    with pytest.raises(RuntimeError, match="fails mid-way"):
        app.runner.txt2img(p)
    assert failing.seen == {"circular"}
    assert {m.padding_mode for m in _convs(app)} == {"zeros"}


def test_a_tiled_job_tiles_its_controlnet_models_too_and_gives_them_back(app):
    models = app.controlnet.models
    loaded = models.load(models.find("control_tiny_canny"), app.models.active.sd)  # the job's cached model
    convs = [m for m in loaded.model.modules() if isinstance(m, nn.Conv2d)]
    unit = ControlNetUnit(
        enabled=True, module="canny", model="control_tiny_canny", images=[shapes_image()], processor_res=64
    )
    look = LookAt(convs)
    p = StableDiffusionProcessingTxt2Img(**SMALL, seed=3, tiling=True, do_not_save_samples=True)
    p.controlnet_units, p.engine_extensions["look"] = [unit], look
    app.runner.txt2img(p)
    assert look.seen == {"circular"}
    assert {m.padding_mode for m in convs} == {"zeros"}
