"""img2img grows a small init image with the setting `upscaler_for_img2img` (A1111's
`images.resize_image` default), Lanczos when it is unset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from tests.fixtures import tiny_upscalers as tiny

SIZE = 64


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    tiny.write(data / "models" / "ESRGAN" / "4x-old-style.pth", tiny.esrgan_old())
    return make_module_app(data, loaded=True)


def _init() -> Image.Image:
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))


def _encoded(app, image: Image.Image) -> torch.Tensor:
    sd = app.models.active.sd
    tensor = torch.from_numpy(np.moveaxis(np.asarray(image, dtype=np.float32) / 255, 2, 0))[None]
    return engine_img2img.encode(sd, tensor.to(sd.device, sd.vae.dtype) * 2 - 1)


def _job(**changes) -> StableDiffusionProcessingImg2Img:
    values = {
        "prompt": "a red fox",
        "steps": 2,
        "width": SIZE,
        "height": SIZE,
        "seed": 5,
        "sampler_name": "Euler",
        "init_images": [_init()],
        "denoising_strength": 0.0,
        "do_not_save_grid": True,
    }
    return StableDiffusionProcessingImg2Img(**{**values, **changes})


def test_the_init_image_grows_with_the_img2img_upscaler(app):
    p = _job(override_settings={"upscaler_for_img2img": "4x-old-style"})
    app.runner.img2img(p)
    expected = app.upscalers.resize(_init(), SIZE, SIZE, "4x-old-style")
    assert torch.allclose(p.init_latent, _encoded(app, expected), atol=1e-5)


def test_without_the_setting_lanczos_grows_it(app):
    p = _job()
    app.runner.img2img(p)
    expected = _init().resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    assert torch.allclose(p.init_latent, _encoded(app, expected), atol=1e-5)
    upscaled = _encoded(app, app.upscalers.resize(_init(), SIZE, SIZE, "4x-old-style"))
    assert not torch.allclose(p.init_latent, upscaled, atol=1e-3)
