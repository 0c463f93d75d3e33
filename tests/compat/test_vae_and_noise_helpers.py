"""A1111's VAE and noise helpers as extensions call them on the loaded model: `processing.
create_random_tensors` (the first noise of a job's seeds), `decode_first_stage`, `decode_latent_batch`,
`images_tensor_to_samples`, and LDM's `sd_model.decode_first_stage` / `encode_first_stage` /
`get_first_stage_encoding`."""

from __future__ import annotations

import pytest
import torch

from modules import processing, rng, sd_samplers_common, shared
from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.engine.sampling.noise import image_noise, make_generators


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("vae-helpers"), "--nowebui", loaded=True)


def red_picture(size: int = 64) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1]: a red picture."""
    picture = torch.zeros((1, 3, size, size))
    picture[:, 0] = 0.85
    picture[:, 1:] = 0.1
    return picture


def test_create_random_tensors_is_the_first_noise_of_the_seeds(app):
    shape = (4, 8, 8)
    noise = processing.create_random_tensors(shape, [3, 4], subseeds=[30, 40], subseed_strength=0.25)
    expected = image_noise(shape, make_generators([3, 4], "cpu"), subseeds=[30, 40], subseed_strength=0.25)
    assert torch.equal(noise.cpu(), expected)
    assert processing.slerp is rng.slerp


def test_pixels_go_to_latents_and_back_through_the_models_vae(app):
    model = shared.sd_model
    picture = red_picture()
    latents = processing.images_tensor_to_samples(picture, None, model)
    assert latents.shape == (1, 4, 8, 8)
    sumi = engine_img2img.encode(model.sumi_model, picture * 2 - 1)  # the posterior's mean, scaled alike
    torch.testing.assert_close(latents.float().cpu(), sumi.float().cpu(), atol=1e-4, rtol=0)
    pixels = processing.decode_first_stage(model, latents)
    assert pixels.shape == (1, 3, 64, 64) and pixels.min() < 0  # [-1, 1], not [0, 1]
    back = ((pixels.float().cpu() + 1) / 2).clamp(0, 1)
    assert (back.mean(dim=(2, 3)) - picture.mean(dim=(2, 3))).abs().max() < 0.15


def test_a_batch_is_encoded_and_decoded_picture_by_picture(app):
    model = shared.sd_model
    pictures = torch.cat([red_picture(), 1 - red_picture()])
    latents = sd_samplers_common.images_tensor_to_samples(pictures)  # the loaded model by default
    assert latents.shape == (2, 4, 8, 8)
    decoded = processing.decode_latent_batch(model, latents, target_device="cpu", check_for_nans=True)
    assert decoded.already_decoded and len(decoded) == 2 and decoded[0].device.type == "cpu"
    whole = sd_samplers_common.samples_to_images_tensor(latents).float().cpu()
    for i, picture in enumerate(decoded):
        torch.testing.assert_close(picture.float(), whole[i], atol=1e-3, rtol=0)


def test_ldm_encoding_scales_a_posterior_mean_or_a_tensor(app):
    model = shared.sd_model
    assert model.scale_factor == pytest.approx(0.18215)
    posterior = model.encode_first_stage(red_picture() * 2 - 1)
    torch.testing.assert_close(
        model.get_first_stage_encoding(posterior.mode()), posterior.mode() * model.scale_factor
    )
    encoded = model.get_first_stage_encoding(posterior)  # deterministic, as Sumi's img2img encodes
    assert torch.equal(encoded, posterior.mode() * model.scale_factor)
    with pytest.raises(TypeError, match="a posterior or a tensor"):
        model.get_first_stage_encoding("latents")


def test_alphas_cumprod_is_the_training_schedule(app):
    alphas = shared.sd_model.alphas_cumprod
    assert alphas.shape == (1000,) and alphas[0] > alphas[-1] > 0
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled_linear
    torch.testing.assert_close(alphas.cpu().double(), torch.cumprod(1 - betas, 0), atol=1e-6, rtol=0)
