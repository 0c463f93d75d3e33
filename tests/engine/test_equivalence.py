"""Sumi's engine gives diffusers' own pipelines' images for the same weights, noise, sampler and prompt
embeddings: tiny checkpoints in the real single-file layouts, loaded through Sumi's loader."""

from __future__ import annotations

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

from modules.sumi.engine import generate as engine
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.text.schedule import pick, stack_rows

TOLERANCE = 1e-4
SAMPLERS = [("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("DDIM", "Automatic"), ("Heun", "Automatic")]


def _request(sampler: str, schedule: str, **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox in the snow", "a lighthouse at dusk"],
        negative_prompts=["blurry", ""],
        seeds=[101, 102],
        width=64,
        height=64,
        steps=4,
        cfg_scale=6.5,
        sampler=sampler,
        schedule=schedule,
        **kw,
    )


def _sumi_images(model, request) -> torch.Tensor:
    generators, noise = engine.initial_noise(model, request)
    from modules.sumi.engine.sampling import loop
    from modules.sumi.engine.sampling.denoiser import CFGDenoiser

    built = build_scheduler(request.sampler, request.schedule, model.scheduler_config, seed=request.seeds[0])
    denoiser = CFGDenoiser(model.unet, engine.conditioning(model, request), request.steps)
    latents = loop.sample(denoiser, built, noise, request.steps, generators=generators, progress_bar=False)
    return vae_ops.decode(model, latents)


def _sd_pipeline(model, scheduler) -> StableDiffusionPipeline:
    spec = model.text_encoders[0]
    pipe = StableDiffusionPipeline(
        vae=model.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _embeddings(model, request):
    """The (single-part, unscheduled) prompt embeddings Sumi uses, to hand to diffusers."""
    jc = engine.conditioning(model, request).conditioning
    cond = stack_rows([pick(c.parts[0][1], 0).cond for c in jc.conds])
    uncond = stack_rows([pick(u, 0).cond for u in jc.unconds])
    return cond, uncond


def _diffusers_images(model, request, scheduler=None) -> torch.Tensor:
    cond, uncond = _embeddings(model, request)
    scheduler = (
        scheduler
        or build_scheduler(
            request.sampler, request.schedule, model.scheduler_config, seed=request.seeds[0]
        ).scheduler
    )
    common = dict(
        prompt_embeds=cond.context,
        negative_prompt_embeds=uncond.context,
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        width=request.width,
        height=request.height,
        generator=make_generators(request.seeds),
        output_type="pt",
    )
    if request.sampler == "DDIM":
        common["eta"] = request.eta_ddim
    if model.is_sdxl:
        te1, te2 = model.text_encoders
        pipe = StableDiffusionXLPipeline(
            vae=model.vae,
            text_encoder=te1.model,
            text_encoder_2=te2.model,
            tokenizer=te1.tokenizer,
            tokenizer_2=te2.tokenizer,
            unet=model.unet,
            scheduler=scheduler,
        )
        pipe.set_progress_bar_config(disable=True)
        common["pooled_prompt_embeds"] = cond.pooled
        common["negative_pooled_prompt_embeds"] = uncond.pooled
        return pipe(**common).images
    return _sd_pipeline(model, scheduler)(**common).images


@pytest.fixture(scope="module")
def models(tiny_sd1_ckpt, tiny_sd2v_ckpt, tiny_sdxl_ckpt):
    loaded = {}
    for name, (path, _) in {"SD1": tiny_sd1_ckpt, "SD2-v": tiny_sd2v_ckpt, "SDXL": tiny_sdxl_ckpt}.items():
        model = load_checkpoint(path)
        for module in model.modules():
            module.eval()
        loaded[name] = model
    return loaded


@pytest.mark.parametrize("family", ["SD1", "SD2-v", "SDXL"])
@pytest.mark.parametrize(("sampler", "schedule"), SAMPLERS)
def test_same_image_as_diffusers_pipeline(models, family, sampler, schedule):
    model = models[family]
    request = _request(sampler, schedule)
    with torch.no_grad():
        ours = _sumi_images(model, request)
        theirs = _diffusers_images(model, request)
    assert ours.shape == theirs.shape == (2, 3, 64, 64)
    assert ours.std() > 1e-3 and (ours[0] - ours[1]).abs().max() > 1e-3  # real pictures, not constants
    assert (ours - theirs).abs().max().item() < TOLERANCE


def test_loader_sees_the_families_and_prediction_types(models):
    assert models["SD1"].family == "SD1" and models["SD1"].prediction_type == "epsilon"
    assert models["SD2-v"].family == "SD2" and models["SD2-v"].prediction_type == "v_prediction"
    assert models["SDXL"].is_sdxl and models["SDXL"].vae_scaling_factor == pytest.approx(0.13025)


def test_euler_a_equals_stock_diffusers_euler_ancestral(models):
    """Our Euler a (which adds eta and Karras) is diffusers' Euler a at eta 1."""
    model = models["SD1"]
    request = _request("Euler a", "Automatic")
    stock = EulerAncestralDiscreteScheduler.from_config(
        {**model.scheduler_config, "timestep_spacing": "linspace"}
    )
    with torch.no_grad():
        assert (
            _sumi_images(model, request) - _diffusers_images(model, request, stock)
        ).abs().max() < TOLERANCE


def test_generate_matches_the_step_by_step_path_and_is_deterministic(models):
    model = models["SD1"]
    request = _request("DPM++ 2M", "Karras")
    with torch.no_grad():
        first = engine.generate(model, request, progress_bar=False)
        again = engine.generate(model, request, progress_bar=False)
        reference = vae_ops.to_pil(_sumi_images(model, request))
    assert [i.tobytes() for i in first.images] == [i.tobytes() for i in again.images]
    assert [i.tobytes() for i in first.images] == [i.tobytes() for i in reference]
    assert first.schedule == "Karras" and first.sampler == "DPM++ 2M"


def test_an_image_does_not_depend_on_its_place_in_the_batch(models):
    model = models["SD1"]
    both = _request("Euler a", "Automatic")
    alone = engine.BatchRequest(
        prompts=both.prompts[1:],
        negative_prompts=both.negative_prompts[1:],
        seeds=both.seeds[1:],
        width=64,
        height=64,
        steps=4,
        cfg_scale=6.5,
        sampler="Euler a",
    )
    with torch.no_grad():
        batch = _sumi_images(model, both)
        single = _sumi_images(model, alone)
    assert (batch[1] - single[0]).abs().max() < TOLERANCE
