"""Jobs never return black images from non-finite output: a damaged checkpoint is refused when it is
selected, NaN after the UNet or the VAE fails the job with A1111's message (unless
--disable-nan-check), and the VAE is retried in fp32 first when `auto_vae_precision` is on."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.errors import ModelLoadError, NansException
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from tests.fixtures.tiny_models import write_filled_checkpoint as write_checkpoint

UNET_OUT = "model.diffusion_model.out.2.weight"  # the UNet's last conv


def overflowing_app(make_app, tmp_path, *flags):
    """An App whose only checkpoint loads (its weights are finite) but whose UNet overflows float32 at
    run time: what a broken merge gives."""
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_checkpoint(folder / "overflowing.safetensors", **{UNET_OUT: 1e38})
    return make_app(tmp_path, "--nowebui", *flags, loaded=True)


def job(**values) -> StableDiffusionProcessingTxt2Img:
    params = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "seed": 3}
    params |= {"sampler_name": "Euler", "do_not_save_samples": True, "do_not_save_grid": True}
    return StableDiffusionProcessingTxt2Img(**(params | values))


def test_nan_after_the_unet_fails_the_job_with_a1111s_message(make_app, tmp_path):
    app = overflowing_app(make_app, tmp_path)
    with pytest.raises(NansException, match=r"^A tensor with all NaNs was produced in Unet for the image"):
        app.runner.txt2img(job())


def test_disable_nan_check_lets_the_black_image_through(make_app, tmp_path):
    app = overflowing_app(make_app, tmp_path, "--disable-nan-check")
    assert not any("--disable-nan-check" in notice for notice in app.notices)  # implemented now
    with pytest.warns(RuntimeWarning):  # numpy casting NaN to uint8
        processed = app.runner.txt2img(job())
    assert processed.images[0].getextrema() == ((0, 0), (0, 0), (0, 0))


def test_selecting_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(make_app, tmp_path):
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_checkpoint(folder / "a_good.safetensors")
    write_checkpoint(folder / "damaged.safetensors", **{UNET_OUT: float("nan")})
    app = make_app(tmp_path, "--nowebui", loaded=True)
    damaged = app.checkpoints.match("damaged")
    assert damaged is not None
    with pytest.raises(ModelLoadError, match=rf"damaged\.safetensors: the UNet tensor {UNET_OUT} holds NaN"):
        app.models.load(damaged)
    assert app.models.active is not None and app.models.active.checkpoint.name.startswith("a_good")
    with pytest.raises(ModelLoadError, match=r"damaged\.safetensors"):
        app.runner.txt2img(job(override_settings={"sd_model_checkpoint": "damaged"}))


def _half_vae_that_overflows(app) -> None:
    """Engine-level injection (no GPU here): the active model's VAE in fp16 with a first conv whose
    output exceeds float16's range, so fp16 decodes NaN and fp32 does not."""
    vae = app.models.active.sd.vae
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e4)
    vae.half()


def test_half_vae_nan_is_retried_in_fp32_and_the_job_says_so(make_app, tmp_path):
    app = make_app(tmp_path, "--nowebui", loaded=True)
    _half_vae_that_overflows(app)
    processed = app.runner.txt2img(job())
    assert app.models.active.sd.vae.dtype == torch.float32
    assert processed.images[0].getextrema() != ((0, 0), (0, 0), (0, 0))
    assert any("switched to 32-bit floats" in w for w in processed.warnings)


def test_without_auto_vae_precision_half_vae_nan_fails_the_job_naming_the_vae(make_app, tmp_path):
    app = make_app(tmp_path, "--nowebui", loaded=True)
    _half_vae_that_overflows(app)
    with pytest.raises(NansException, match=r"produced in VAE.*--no-half-vae"):
        app.runner.txt2img(job(override_settings={"auto_vae_precision": False}))
    assert app.models.active.sd.vae.dtype == torch.float16
