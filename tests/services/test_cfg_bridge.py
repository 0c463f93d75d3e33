"""A1111's denoiser on the engine's hook points for the model kinds the app-level tests do not reach: the
instruct-pix2pix rows (cond, uncond with the image, uncond with a zero image) and a v-prediction model,
checked against Sumi's own guidance."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.sampling.training_noise import training_sigmas
from modules.sumi.services.jobs.a1111_sampler import CFGDenoiser, create_sampler
from modules.sumi.services.jobs.cfg_bridge import A1111Denoiser
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from tests.fixtures.tiny_models import write_tiny_checkpoint

SIZE = 32


@pytest.fixture(scope="module")
def pix2pix(tmp_path_factory):
    path = tmp_path_factory.mktemp("pix2pix") / "tiny_pix2pix.safetensors"
    write_tiny_checkpoint(path, "SD1", pix2pix=True)
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def sd2v(tiny_sd2v_ckpt):
    return load_checkpoint(tiny_sd2v_ckpt[0])


def _request(init=None, steps: int = 2) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox", "a lighthouse"],
        negative_prompts=["blurry", ""],
        seeds=[101, 102],
        width=SIZE,
        height=SIZE,
        steps=steps,
        cfg_scale=6.5,
        sampler="Euler",
        init=init,
    )


def _bridge(model, callbacks: CallbackRegistry, sampler=None) -> A1111Denoiser:
    sampler = sampler or create_sampler("Euler", model)
    return A1111Denoiser(callbacks, sampler, training_sigmas(model.scheduler_config), model.prediction_type)


def _pix2pix_init(model) -> img2img.InitLatents:
    pixels = torch.rand((2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(5)) * 2 - 1
    image = img2img.pix2pix_conditioning(model, pixels)
    return img2img.InitLatents(
        img2img.encode(model, pixels), 0.6, image_conditioning=image, image_cfg_scale=1.5
    )


def test_instruct_pix2pix_rows_come_in_three_groups_and_the_edit_combination_is_sumis(pix2pix):
    init = _pix2pix_init(pix2pix)
    plain = engine.generate(pix2pix, _request(init), progress_bar=False)
    callbacks, shapes = CallbackRegistry(), []
    callbacks.add("cfg_denoiser", lambda params: shapes.append((params.x.shape[0], params.image_cond.shape)))
    callbacks.add("cfg_denoised", lambda params: shapes.append(params.x.shape[0]))
    bridged = engine.generate(
        pix2pix, _request(init), extensions=[_bridge(pix2pix, callbacks)], progress_bar=False
    )
    x_rows, image_cond = shapes[0]
    assert x_rows == 6 and image_cond[0] == 6 and shapes[1] == 6  # cond, uncond+image, uncond+zero image
    torch.testing.assert_close(bridged.latents, plain.latents, rtol=1e-4, atol=1e-4)


def test_an_edit_combination_override_gets_the_three_groups(pix2pix):
    init = _pix2pix_init(pix2pix)

    class OnlyImageGuidance(CFGDenoiser):
        def combine_denoised_for_edit_model(self, x_out, cond_scale):
            out_cond, out_img_cond, out_uncond = x_out.chunk(3)
            return out_img_cond  # the uncond text with the image: no text guidance at all

    sampler = create_sampler("Euler", pix2pix)
    sampler.model_wrap_cfg = OnlyImageGuidance(sampler)
    overridden = engine.generate(
        pix2pix,
        _request(init),
        extensions=[_bridge(pix2pix, CallbackRegistry(), sampler)],
        progress_bar=False,
    )
    plain = engine.generate(pix2pix, _request(init), progress_bar=False)
    assert not torch.allclose(overridden.latents, plain.latents, atol=1e-3)


def test_a_v_prediction_model_goes_through_x0_and_back_unchanged(sd2v):
    assert sd2v.prediction_type == "v_prediction"
    plain = engine.generate(sd2v, _request(), progress_bar=False)
    callbacks = CallbackRegistry()
    callbacks.add("cfg_denoised", lambda params: None)
    bridged = engine.generate(sd2v, _request(), extensions=[_bridge(sd2v, callbacks)], progress_bar=False)
    torch.testing.assert_close(bridged.latents, plain.latents, rtol=1e-4, atol=1e-4)
