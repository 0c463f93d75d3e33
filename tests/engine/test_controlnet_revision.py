"""SDXL Revision: a picture's CLIP image embedding replaces the pooled prompt on the cond rows (zeros on
the uncond rows), and ignore_prompt zeroes the text: a job equals diffusers' SDXL pipeline given exactly
those embeddings. The noise augmentation is the extension's q_sample on its linear schedule."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.revision import RevisionUnit, noise_augmented
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.text.schedule import pick, stack_rows
from tests.engine.pipeline_reference import two_image_request

SIZE = 64


@pytest.fixture(scope="module")
def model(tiny_sdxl_ckpt):
    model = load_checkpoint(tiny_sdxl_ckpt[0])
    for module in model.modules():
        module.eval()
    return model


def _request(units=(), prompts=("a red fox", "a blue house")) -> engine.BatchRequest:
    return two_image_request(units, prompts=list(prompts), sampler="Euler")


def _diffusers(model, request, pooled: torch.Tensor, zero_text: bool, negative_pooled=None) -> torch.Tensor:
    jc = engine.conditioning(model, request).conditioning
    cond = stack_rows([pick(c.parts[0][1], 0).cond for c in jc.conds])
    uncond = stack_rows([pick(u, 0).cond for u in jc.unconds])
    te1, te2 = model.text_encoders
    built = build_scheduler(request.sampler, request.schedule, model.scheduler_config, seed=request.seeds[0])
    pipe = StableDiffusionXLPipeline(
        vae=model.vae,
        text_encoder=te1.model,
        text_encoder_2=te2.model,
        tokenizer=te1.tokenizer,
        tokenizer_2=te2.tokenizer,
        unet=model.unet,
        scheduler=built.scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    text = (
        (torch.zeros_like(cond.context), torch.zeros_like(uncond.context))
        if zero_text
        else (cond.context, uncond.context)
    )
    return pipe(
        prompt_embeds=text[0],
        negative_prompt_embeds=text[1],
        pooled_prompt_embeds=pooled,
        negative_pooled_prompt_embeds=torch.zeros_like(pooled)
        if negative_pooled is None
        else negative_pooled,
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        width=SIZE,
        height=SIZE,
        generator=make_generators(request.seeds),
        output_type="latent",
    ).images


@pytest.mark.parametrize("ignore_prompt", [False, True])
def test_a_revision_job_equals_diffusers_with_the_picture_as_the_pooled_prompt(model, ignore_prompt):
    width = model.text_encoders[1].model.config.projection_dim
    embeds = torch.randn(2, width, generator=torch.Generator().manual_seed(3))
    unit = RevisionUnit(embeds, weight=0.8, ignore_prompt=ignore_prompt)
    ours = engine.generate(model, _request([unit]), progress_bar=False).latents
    expected = _diffusers(model, _request(), embeds * 0.8, ignore_prompt)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=5e-4)
    other_prompts = engine.generate(model, _request([unit], ("a cat", "a ship")), progress_bar=False).latents
    assert torch.equal(other_prompts, ours) == ignore_prompt  # ignore_prompt: the text does not count


def test_an_embedding_of_another_width_is_a_clear_error(model):
    unit = RevisionUnit(torch.zeros(1, 7))
    with pytest.raises(InvalidRequestError, match="7 wide; this model's pooled prompt is"):
        engine.generate(model, _request([unit]), progress_bar=False)


def test_noise_augmentation_follows_the_linear_schedule_and_the_seed():
    embeds = torch.ones(1, 1000)
    quiet = noise_augmented(embeds, 0.0, torch.Generator().manual_seed(1))
    loud = noise_augmented(embeds, 1.0, torch.Generator().manual_seed(1))
    betas = torch.linspace(1e-4**0.5, 2e-2**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    noise = torch.randn(1, 1000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(quiet, (alphas[0].sqrt() + (1 - alphas[0]).sqrt() * noise).float())
    torch.testing.assert_close(loud, (alphas[999].sqrt() + (1 - alphas[999]).sqrt() * noise).float())
    assert torch.equal(quiet, noise_augmented(embeds, 0.0, torch.Generator().manual_seed(1)))
