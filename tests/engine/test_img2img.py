"""img2img and inpainting in the engine: diffusers' img2img, inpaint and instruct-pix2pix pipelines give
the same latents for the same weights, noise and step mapping; A1111's strength/steps semantics, fills
and mask blending hold exactly.

Step mapping (A1111 vs diffusers): with t_enc = int(min(strength, 0.999) * steps), A1111's k-diffusion
samplers run the last t_enc + 1 steps of a `steps`-step schedule, the init noised to the first of them.
diffusers' img2img pipelines run the last int(steps * strength) steps, noised the same way. So A1111 at
(steps, strength) is diffusers at (steps, (t_enc + 1) / steps): the tests compare at that strength.
A1111's DDIM/PLMS/UniPC run the last t_enc steps and noise the init one step above the first of them
(diffusers: at the first), so DDIM is checked against A1111's formula instead. Inpainting: diffusers'
9-channel pipeline does not blend a latent mask (A1111 does, on top of the conditioning), so the 9-channel
comparison gives the engine the image conditioning and no latent mask.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionInstructPix2PixPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
)
from PIL import Image

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import Extension, HookPoint, LoopContext, StepContext, hook
from modules.sumi.engine.sampling import loop
from modules.sumi.engine.sampling.denoiser import CFGDenoiser
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler, call_sigma, find_sampler
from modules.sumi.engine.text.schedule import pick, stack_rows
from tests.fixtures.tiny_models import SD2_V_YAML, write_tiny_checkpoint

TOLERANCE = 1e-4
SIZE = 64


def _load(path):
    model = load_checkpoint(path)
    for module in model.modules():
        module.eval()
    return model


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    return _load(tiny_sd1_ckpt[0])


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl_ckpt):
    return _load(tiny_sdxl_ckpt[0])


def _tiny_checkpoint(tmp_path_factory, family, kind, **kwargs):
    """A tiny `family` checkpoint of another kind (inpaint=True, pix2pix=True...), written and loaded."""
    path = tmp_path_factory.mktemp(kind) / f"tiny_{family.lower()}_{kind}.safetensors"
    write_tiny_checkpoint(path, family, **kwargs)
    return _load(path)


def _inpaint_checkpoint(tmp_path_factory, family, yaml=None, **kwargs):
    return _tiny_checkpoint(tmp_path_factory, family, "inpaint", inpaint=True, yaml=yaml, **kwargs)


@pytest.fixture(scope="module")
def sd1_inpaint(tmp_path_factory):
    return _inpaint_checkpoint(tmp_path_factory, "SD1")


@pytest.fixture(scope="module")
def sd2_inpaint(tmp_path_factory):
    return _inpaint_checkpoint(tmp_path_factory, "SD2")


@pytest.fixture(scope="module")
def sd2v_inpaint(tmp_path_factory):
    """A 9-channel SD2 model whose yaml says v-prediction (the released SD2 inpainting model is epsilon)."""
    yaml = SD2_V_YAML.replace("in_channels: 4", "in_channels: 9")
    return _inpaint_checkpoint(tmp_path_factory, "SD2", yaml=yaml, v_prediction=True)


@pytest.fixture(scope="module")
def sdxl_inpaint(tmp_path_factory):
    return _inpaint_checkpoint(tmp_path_factory, "SDXL")


@pytest.fixture(scope="module")
def sd1_pix2pix(tmp_path_factory):
    return _tiny_checkpoint(tmp_path_factory, "SD1", "pix2pix", pix2pix=True)


def _pixels(seed: int = 0, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, 3, SIZE, SIZE), generator=generator) * 2 - 1


def _request(init=None, sampler="Euler a", schedule="Automatic", steps=6, **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox in the snow", "a lighthouse at dusk"],
        negative_prompts=["blurry", ""],
        seeds=[101, 102],
        width=SIZE,
        height=SIZE,
        steps=steps,
        cfg_scale=6.5,
        sampler=sampler,
        schedule=schedule,
        init=init,
        **kw,
    )


def _embeddings(model, request):
    jc = engine.conditioning(model, request).conditioning
    cond = stack_rows([pick(c.parts[0][1], 0).cond for c in jc.conds])
    uncond = stack_rows([pick(u, 0).cond for u in jc.unconds])
    return cond, uncond


class Recorder(Extension):
    """Records the start latents, every step's latents and the model calls' timesteps."""

    def __init__(self) -> None:
        self.start: torch.Tensor | None = None
        self.timesteps: list[float] = []
        self.denoised: list[torch.Tensor] = []

    @hook(HookPoint.PRE_LOOP)
    def first(self, context: LoopContext) -> None:
        self.start = context.latents.clone()

    @hook(HookPoint.POST_STEP)
    def step(self, context: StepContext) -> None:
        self.timesteps.append(float(context.timestep))
        if context.denoised is not None:
            self.denoised.append(context.denoised.clone())


def _a1111_strength_for_diffusers(steps: int, strength: float) -> float:
    t_enc = int(min(strength, 0.999) * steps)
    return (t_enc + 1) / steps + 1e-6


@pytest.mark.parametrize(
    "sampler,schedule", [("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("Heun", "Automatic")]
)
def test_img2img_latents_equal_diffusers_img2img_pipeline(sd1, sampler, schedule):
    steps, strength = 6, 0.5
    init = img2img.encode(sd1, _pixels())
    request = _request(img2img.InitLatents(init, strength), sampler, schedule, steps)
    ours = engine.generate(sd1, request, progress_bar=False).latents
    cond, uncond = _embeddings(sd1, request)
    spec = sd1.text_encoders[0]
    pipe = StableDiffusionImg2ImgPipeline(
        vae=sd1.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=sd1.unet,
        scheduler=build_scheduler(sampler, schedule, sd1.scheduler_config).scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    theirs = _diffusers_latents(pipe, init, request, steps, strength, cond, uncond)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_sdxl_img2img_latents_equal_diffusers_sdxl_img2img_pipeline(sdxl):
    steps, strength = 5, 0.6
    init = img2img.encode(sdxl, _pixels(1))
    request = _request(img2img.InitLatents(init, strength), "Euler", "Automatic", steps)
    ours = engine.generate(sdxl, request, progress_bar=False).latents
    cond, uncond = _embeddings(sdxl, request)
    te1, te2 = sdxl.text_encoders
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=sdxl.vae,
        text_encoder=te1.model,
        text_encoder_2=te2.model,
        tokenizer=te1.tokenizer,
        tokenizer_2=te2.tokenizer,
        unet=sdxl.unet,
        scheduler=build_scheduler("Euler", "Automatic", sdxl.scheduler_config).scheduler,
        requires_aesthetics_score=False,
    )
    pooled = {"pooled_prompt_embeds": cond.pooled, "negative_pooled_prompt_embeds": uncond.pooled}
    theirs = _diffusers_latents(pipe, init, request, steps, strength, cond, uncond, **pooled)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def _diffusers_latents(pipe, init, request, steps, strength, cond, uncond, **extra) -> torch.Tensor:
    """What a diffusers img2img/inpaint pipeline makes of `init` at A1111's (steps, strength)."""
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        image=init,
        strength=_a1111_strength_for_diffusers(steps, strength),
        prompt_embeds=cond.context,
        negative_prompt_embeds=uncond.context,
        num_inference_steps=steps,
        guidance_scale=request.cfg_scale,
        generator=make_generators(request.seeds),
        output_type="latent",
        **extra,
    ).images


def _nine_channel_latents(model, pipeline_class, pipeline_kwargs, call_kwargs):
    """Sumi's latents and diffusers' inpaint pipeline's for the same 9-channel model, noise and mask."""
    assert img2img.needs_image_conditioning(model) == "inpaint"
    steps, strength = 6, 0.75
    pixels = _pixels(2)
    mask = torch.zeros((2, 1, SIZE, SIZE))
    mask[:, :, 16:48, 8:40] = 1
    init = img2img.encode(model, pixels)
    conditioning = img2img.inpaint_conditioning(model, pixels, mask)
    assert conditioning.shape == (2, 5, SIZE // 8, SIZE // 8)
    request = _request(
        img2img.InitLatents(init, strength, image_conditioning=conditioning), "Euler", "Automatic", steps
    )
    ours = engine.generate(model, request, progress_bar=False).latents
    cond, uncond = _embeddings(model, request)
    pipe = pipeline_class(
        vae=model.vae,
        unet=model.unet,
        scheduler=build_scheduler("Euler", "Automatic", model.scheduler_config).scheduler,
        **pipeline_kwargs,
    )
    extra = {key: value(cond, uncond) for key, value in call_kwargs.items()}
    theirs = _diffusers_latents(
        pipe, init, request, steps, strength, cond, uncond,
        mask_image=mask, masked_image_latents=conditioning[:, 1:], height=SIZE, width=SIZE, **extra,
    )  # fmt: skip
    return ours, theirs


def _sd_inpaint_latents(model):
    spec = model.text_encoders[0]
    components = {
        "text_encoder": spec.model,
        "tokenizer": spec.tokenizer,
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }
    return _nine_channel_latents(model, StableDiffusionInpaintPipeline, components, {})


def test_nine_channel_inpaint_model_equals_diffusers_inpaint_pipeline(sd1_inpaint):
    ours, theirs = _sd_inpaint_latents(sd1_inpaint)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_sd2_nine_channel_inpaint_model_equals_diffusers_inpaint_pipeline(sd2_inpaint):
    assert (sd2_inpaint.family, sd2_inpaint.prediction_type) == ("SD2", "epsilon")
    ours, theirs = _sd_inpaint_latents(sd2_inpaint)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_sd2_v_prediction_nine_channel_inpaint_model_equals_diffusers_inpaint_pipeline(sd2v_inpaint):
    assert (sd2v_inpaint.family, sd2v_inpaint.variant) == ("SD2", "v-inpaint")
    assert sd2v_inpaint.scheduler_config["prediction_type"] == "v_prediction"
    ours, theirs = _sd_inpaint_latents(sd2v_inpaint)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_sdxl_nine_channel_inpaint_model_equals_diffusers_sdxl_inpaint_pipeline(sdxl_inpaint):
    assert sdxl_inpaint.is_sdxl and sdxl_inpaint.is_inpainting
    te1, te2 = sdxl_inpaint.text_encoders
    components = {
        "text_encoder": te1.model,
        "text_encoder_2": te2.model,
        "tokenizer": te1.tokenizer,
        "tokenizer_2": te2.tokenizer,
        "requires_aesthetics_score": False,
    }
    pooled = {
        "pooled_prompt_embeds": lambda cond, uncond: cond.pooled,
        "negative_pooled_prompt_embeds": lambda cond, uncond: uncond.pooled,
    }
    ours, theirs = _nine_channel_latents(sdxl_inpaint, StableDiffusionXLInpaintPipeline, components, pooled)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_inpaint_conditioning_masks_the_image_with_the_rounded_mask_and_weight(sd1_inpaint):
    pixels = _pixels(3, batch=1)
    mask = torch.full((1, 1, SIZE, SIZE), 0.6)  # rounds to 1: the whole image is masked out
    full = img2img.inpaint_conditioning(sd1_inpaint, pixels, mask)
    grey = img2img.encode(sd1_inpaint, torch.zeros_like(pixels))
    assert torch.equal(full[:, :1], torch.ones_like(full[:, :1]))
    assert torch.allclose(full[:, 1:], grey, atol=1e-6)
    half = img2img.inpaint_conditioning(sd1_inpaint, pixels, mask, mask_weight=0.5)
    assert torch.allclose(half[:, 1:], img2img.encode(sd1_inpaint, pixels * 0.5), atol=1e-6)


def test_nine_channel_model_samples_txt2img_with_a1111s_grey_conditioning(sd1_inpaint):
    result = engine.generate(sd1_inpaint, _request(steps=2), progress_bar=False)
    assert result.latents.shape == (2, 4, 8, 8) and torch.isfinite(result.latents).all()


def test_nine_channel_img2img_without_conditioning_is_refused(sd1_inpaint):
    init = img2img.encode(sd1_inpaint, _pixels())
    with pytest.raises(InvalidRequestError, match="inpaint_conditioning"):
        engine.generate(sd1_inpaint, _request(img2img.InitLatents(init, 0.5)), progress_bar=False)


def test_pix2pix_image_guidance_equals_diffusers_instruct_pix2pix_pipeline(sd1_pix2pix):
    model = sd1_pix2pix
    assert img2img.needs_image_conditioning(model) == "pix2pix"
    pixels = _pixels(4)
    image = img2img.pix2pix_conditioning(model, pixels)
    request = _request(sampler="Euler a", steps=4)
    built = build_scheduler("Euler a", "Automatic", model.scheduler_config)
    generators, noise = engine.initial_noise(model, request)
    denoiser = CFGDenoiser(
        model.unet,
        engine.conditioning(model, request),
        request.steps,
        image_conditioning=image,
        image_cfg_scale=1.7,
    )
    ours = loop.sample(denoiser, built, noise, request.steps, generators=generators, progress_bar=False)
    cond, uncond = _embeddings(model, request)
    spec = model.text_encoders[0]
    pipe = StableDiffusionInstructPix2PixPipeline(
        vae=model.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=model.unet,
        scheduler=build_scheduler("Euler a", "Automatic", model.scheduler_config).scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        image=image,
        prompt_embeds=cond.context,
        negative_prompt_embeds=uncond.context,
        num_inference_steps=request.steps,
        guidance_scale=request.cfg_scale,
        image_guidance_scale=1.7,
        generator=make_generators(request.seeds),
        output_type="latent",
    ).images
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=TOLERANCE)


def test_pix2pix_img2img_runs_through_generate(sd1_pix2pix):
    pixels = _pixels(5)
    init = img2img.encode(sd1_pix2pix, pixels)
    image = img2img.pix2pix_conditioning(sd1_pix2pix, pixels)
    init_latents = img2img.InitLatents(init, 0.5, image_conditioning=image, image_cfg_scale=1.5)
    result = engine.generate(sd1_pix2pix, _request(init_latents, steps=4), progress_bar=False)
    assert torch.isfinite(result.latents).all()


@pytest.mark.parametrize(
    "steps,strength,fix,sampler,calls",
    [
        (20, 0.75, False, "Euler", 16),  # t_enc 15: A1111's k-diffusion runs t_enc + 1 steps
        (20, 0.75, True, "Euler", 20),  # fix steps: 20 of a 26-step schedule
        (10, 1.0, False, "Euler", 10),  # strength 1 is 0.999: every step
        (10, 0.04, False, "Euler", 1),  # t_enc 0: one step
        (20, 0.75, False, "DDIM", 15),  # timestep samplers run t_enc
        (20, 0.75, True, "DDIM", 19),
        (20, 0.75, False, "UniPC", 15),  # A1111's UniPC: t_enc steps, one model call each
        (10, 0.04, False, "UniPC", 0),  # t_enc 0: nothing runs
        (8, 0.5, False, "Heun", 2 * 5 - 1),  # 5 steps, two model calls each but the last
    ],
)
def test_a1111_step_counts(steps, strength, fix, sampler, calls):
    plan = img2img.img2img_steps(find_sampler(sampler)[0], steps, strength, fix)
    assert plan.schedule_steps == (int(steps / min(strength, 0.999)) if fix else steps)
    built = build_scheduler(sampler, None, {"num_train_timesteps": 1000, "steps_offset": 1})
    seen = []

    def model(x, t, i):
        seen.append(float(t))
        return torch.zeros_like(x)

    init = torch.zeros((1, 4, 2, 2))
    start = loop.PartialStart(init, torch.ones_like(init), plan.run_steps, plan.noise_back)
    loop.sample(model, built, init, plan.schedule_steps, progress_bar=False, start=start)
    assert len(seen) == calls


def test_k_diffusion_start_is_init_plus_noise_at_the_first_run_sigma(sd1):
    init = img2img.encode(sd1, _pixels())
    recorder = Recorder()
    request = _request(img2img.InitLatents(init, 0.5, noise_multiplier=0.9), "Euler", steps=10)
    engine.generate(sd1, request, extensions=[recorder], progress_bar=False)
    _, noise = engine.initial_noise(sd1, request)
    scheduler = build_scheduler("Euler", None, sd1.scheduler_config).scheduler
    scheduler.set_timesteps(10)
    t_enc = 5
    sigma = scheduler.sigmas[10 - t_enc - 1]
    assert recorder.start is not None
    assert torch.allclose(recorder.start, init + noise * 0.9 * sigma, atol=1e-6)
    assert recorder.timesteps == [float(t) for t in scheduler.timesteps[10 - t_enc - 1 :]]


def test_ddim_start_is_a1111s_one_step_above_the_first_run_step(sd1):
    init = img2img.encode(sd1, _pixels())
    recorder = Recorder()
    request = _request(img2img.InitLatents(init, 0.5), "DDIM", steps=10)
    engine.generate(sd1, request, extensions=[recorder], progress_bar=False)
    _, noise = engine.initial_noise(sd1, request)
    alphas = build_scheduler("DDIM", None, sd1.scheduler_config).scheduler.alphas_cumprod
    a = alphas[501]  # A1111: timesteps 1, 101, ... 901; t_enc 5 noises to timesteps[5]
    assert recorder.start is not None
    assert torch.allclose(recorder.start, a.sqrt() * init + (1 - a).sqrt() * noise, atol=1e-5)
    assert recorder.timesteps == [401.0, 301.0, 201.0, 101.0, 1.0]


@pytest.mark.parametrize("sampler", ["Euler a", "DDIM", "Heun", "UniPC"])
def test_strength_zero_returns_the_init_latents_exactly(sd1, sampler):
    init = img2img.encode(sd1, _pixels())
    mask = torch.rand((2, 1, 8, 8))
    for latent_mask in (None, mask):
        request = _request(img2img.InitLatents(init, 0.0, mask=latent_mask), sampler)
        assert torch.equal(engine.generate(sd1, request, progress_bar=False).latents, init)


@pytest.mark.parametrize("fill,extra", [("latent noise", 1.0), ("latent nothing", 0.0)])
def test_strength_one_with_a_full_mask_is_txt2img_from_the_same_seed(sd1, fill, extra):
    """A1111's strength 1 runs every step from init + sigma_max * noise; with a full mask "latent noise"
    makes the init the seed's noise, "latent nothing" zeros, so the start is (extra + sigma_max) * noise:
    txt2img's start (sqrt(sigma_max^2 + 1) * noise) rescaled. Everything else is txt2img's."""
    init = img2img.encode(sd1, _pixels())
    full = torch.ones((1, 1, 8, 8))
    request = _request(img2img.InitLatents(init, 1.0, mask=full, fill=fill), "Euler a", steps=5)
    ours = engine.generate(sd1, request, progress_bar=False).latents
    built = build_scheduler("Euler a", None, sd1.scheduler_config)
    built.stepping.set_timesteps(5)
    sigma_max = float(built.scheduler.sigmas[0])
    generators, noise = engine.initial_noise(sd1, request)
    rescale = (extra + sigma_max) / float(built.stepping.init_noise_sigma)
    denoiser = CFGDenoiser(sd1.unet, engine.conditioning(sd1, request), 5)
    txt2img = loop.sample(denoiser, built, noise * rescale, 5, generators=generators, progress_bar=False)
    # the start is rescaled in another order than txt2img's, so the last bits differ (more with one thread,
    # and with latents up to ~30 one rounding step is above 1e-4): equal to 1e-5 of the latents' range
    assert torch.allclose(ours, txt2img, rtol=1e-4, atol=1e-5 * float(txt2img.abs().max()))


def _start_with_fill(model, fill):
    init = img2img.encode(model, _pixels())
    mask = torch.zeros((1, 1, 8, 8))
    mask[..., 2:6, 1:5] = 1
    recorder = Recorder()
    request = _request(img2img.InitLatents(init, 0.5, mask=mask, fill=fill), "Euler", steps=10)
    engine.generate(model, request, extensions=[recorder], progress_bar=False)
    _, noise = engine.initial_noise(model, request)
    scheduler = build_scheduler("Euler", None, model.scheduler_config).scheduler
    scheduler.set_timesteps(10)
    sigma = float(scheduler.sigmas[4])
    inside = mask[0, 0] == 1
    assert recorder.start is not None
    return recorder.start[..., inside], init[..., inside], noise[..., inside], sigma, recorder.start, mask


def test_fill_original_keeps_the_init_under_the_mask(sd1):
    start, init, noise, sigma, *_ = _start_with_fill(sd1, "original")
    assert torch.allclose(start, init + sigma * noise, atol=1e-5)


def test_fill_latent_noise_replaces_the_masked_init_by_the_seeds_noise(sd1):
    start, _, noise, sigma, *_ = _start_with_fill(sd1, "latent noise")
    assert torch.allclose(start, noise * (1 + sigma), atol=1e-5)


def test_fill_latent_nothing_replaces_the_masked_init_by_zeros(sd1):
    start, _, noise, sigma, *_ = _start_with_fill(sd1, "latent nothing")
    assert torch.allclose(start, noise * sigma, atol=1e-5)


@pytest.mark.parametrize(
    "sampler", ["Euler a", "DPM++ 2M", "Heun", "DDIM", "DPM2", "DPM++ 3M SDE", "DDIM CFG++"]
)
def test_mask_blend_keeps_unmasked_latents_at_the_init(sd1, sampler):
    init = img2img.encode(sd1, _pixels())
    mask = torch.zeros((1, 1, 8, 8))
    mask[..., 2:6, 2:6] = 1
    recorder = Recorder()
    request = _request(img2img.InitLatents(init, 0.6, mask=mask), sampler, steps=6)
    result = engine.generate(sd1, request, extensions=[recorder], progress_bar=False)
    outside, inside = mask[0, 0] == 0, mask[0, 0] == 1
    assert torch.equal(result.latents[..., outside], init[..., outside])
    assert (result.latents[..., inside] - init[..., inside]).abs().max() > 0.01
    if sampler in ("Euler a", "Heun", "DPM2"):  # the scheduler's x0 is the blended prediction
        assert recorder.denoised
        for denoised in recorder.denoised:
            assert (denoised[..., outside] - init[..., outside]).abs().max() < 1e-4


@pytest.mark.parametrize("sampler", ["Euler a", "DDIM"])
def test_on_blend_sees_every_blend_and_its_result_is_used(sd1, sampler):
    init = img2img.encode(sd1, _pixels())
    mask = torch.zeros((1, 1, 8, 8))
    mask[..., 2:6, 2:6] = 1
    seen: list[float | None] = []

    def keep_init(current, blended, sigma):
        seen.append(sigma)
        assert blended.shape == current.shape
        return init.to(current).expand_as(blended)

    request = _request(img2img.InitLatents(init, 0.6, mask=mask, on_blend=keep_init), sampler, steps=6)
    result = engine.generate(sd1, request, progress_bar=False)
    assert seen[-1] is None and len(seen) > 1 and all(s is not None for s in seen[:-1])
    assert torch.allclose(result.latents, init.to(result.latents), atol=1e-5)


def test_call_sigma_is_the_noise_level_the_scheduler_scaled_the_input_with(sd1):
    built = build_scheduler("Euler", "Karras", sd1.scheduler_config)
    built.stepping.set_timesteps(8)
    x = torch.ones((1, 4, 2, 2))
    scaled = built.stepping.scale_model_input(x, built.stepping.timesteps[3])
    sigma = call_sigma(built.scheduler, built.stepping.timesteps[3])
    assert sigma == pytest.approx(float(built.scheduler.sigmas[3]))
    assert torch.allclose(scaled, x / (1 + sigma**2) ** 0.5)
    ddim = build_scheduler("DDIM", None, sd1.scheduler_config)
    ddim.stepping.set_timesteps(10)
    a = float(ddim.scheduler.alphas_cumprod[501])
    assert call_sigma(ddim.scheduler, torch.tensor(501)) == pytest.approx(((1 - a) / a) ** 0.5)


def test_init_latents_are_validated(sd1):
    init = img2img.encode(sd1, _pixels())
    for bad, message in (
        (img2img.InitLatents(init, 1.5), "between 0 and 1"),
        (img2img.InitLatents(init[:1], 0.5), "shape"),
        (img2img.InitLatents(init, 0.5, fill="fill"), "unknown latent fill"),
        (img2img.InitLatents(init, 0.5, mask=torch.ones((1, 1, 4, 4))), "latent mask"),
        (img2img.InitLatents(init, 0.5, image_conditioning=torch.zeros((2, 5, 8, 8))), "image conditioning"),
    ):
        with pytest.raises(InvalidRequestError, match=message):
            engine.generate(sd1, _request(bad), progress_bar=False)


# -- soft inpainting ---------------------------------------------------------------------------------------


def test_soft_latent_blend_ends_at_its_inputs_and_keeps_magnitude():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn((1, 4, 5, 5), generator=generator), torch.randn((1, 4, 5, 5), generator=generator)
    zero, one = torch.zeros((1, 1, 5, 5)), torch.ones((1, 1, 5, 5))
    assert torch.allclose(img2img.soft_latent_blend(a, b, zero, 4.0), a, atol=1e-4)
    assert torch.allclose(img2img.soft_latent_blend(a, b, one, 4.0), b, atol=1e-4)
    half = img2img.soft_latent_blend(a, b, one * 0.5, 4.0)
    linear = (a + b) / 2
    # detail preservation: the blend keeps more magnitude than the linear mix
    assert (half.norm(dim=1) >= linear.norm(dim=1) - 1e-5).all()


def test_soft_mask_preserves_more_with_higher_sigma_and_scale():
    soft = img2img.SoftInpainting(mask_blend_power=1.0, mask_blend_scale=0.5)
    mask = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(soft.modified_mask(mask, 2.0), mask**1.0)
    assert (soft.modified_mask(mask, 8.0)[1] < soft.modified_mask(mask, 1.0)[1]).item()


def _reference_histogram_filter(img, kernel, lo_p, hi_p, min_width=1.0):
    """A direct per-pixel reading of A1111's weighted percentile filter (test oracle)."""
    r = kernel.shape[0] // 2
    out = np.zeros_like(img)
    h, w = img.shape
    for y in range(h):
        for x in range(w):
            items = []
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        items.append((img[y + dy, x + dx], kernel[dy + r, dx + r]))
            items.sort(key=lambda item: item[0])
            total = sum(weight for _, weight in items)
            lo, hi = total * lo_p, total * hi_p
            if hi - lo < min_width:
                centre = (lo + hi) / 2
                lo, hi = centre - min_width / 2, centre + min_width / 2
                if hi > total:
                    lo, hi = total - min_width, total
                if lo < 0:
                    lo, hi = 0, min_width
            acc = weight_sum = 0.0
            bottom = 0.0
            for value, weight in items:
                top = bottom + weight
                overlap = max(0.0, min(hi, top) - max(lo, bottom))
                acc += value * overlap
                weight_sum += overlap
                bottom = top
            out[y, x] = acc / weight_sum if weight_sum else 0
    return out


def test_weighted_histogram_filter_matches_the_per_pixel_definition():
    img = np.random.default_rng(0).random((7, 9))
    kernel = img2img.gaussian_kernel(1.5, 2)
    assert kernel[2, 2] == pytest.approx(1.0)
    for band in ((0.9, 1.0), (0.25, 0.75)):
        ours = img2img.weighted_histogram_filter(img, kernel, *band)
        assert np.allclose(ours, _reference_histogram_filter(img, kernel, *band), atol=1e-9)


def test_soft_inpainting_composite_keeps_the_original_where_latents_did_not_change():
    soft = img2img.SoftInpainting()
    init = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    changed = init.clone()
    changed[..., 4:, :] += 3.0
    mask = torch.ones((1, 1, 8, 8))
    (composite,) = soft.composite_masks(mask, init, changed, SIZE, SIZE)
    values = np.asarray(composite)
    assert composite.size == (SIZE, SIZE) and composite.mode == "L"
    assert values[:8].max() < 30  # unchanged top: the original stays
    assert values[56:].min() > 225  # changed bottom: the generated pixels show
    original = Image.new("RGB", (SIZE, SIZE), (200, 10, 10))
    overlay = np.asarray(img2img.soft_overlay(original, composite))
    assert overlay[:8, :, 3].min() > 225 and overlay[56:, :, 3].max() < 30


def test_soft_inpainting_blends_softly_and_skips_the_final_blend(sd1):
    init = img2img.encode(sd1, _pixels())
    mask = torch.zeros((1, 1, 8, 8))
    mask[..., :, 4:] = 1.0
    mask[..., :, 3] = 0.5
    request = _request(img2img.InitLatents(init, 0.6, mask=mask), "Euler", steps=6)
    hard = engine.generate(sd1, request, progress_bar=False).latents
    soft = engine.generate(sd1, request, extensions=[img2img.SoftInpainting()], progress_bar=False).latents
    assert not torch.equal(hard, soft)
    # fully kept columns: x0 is the init at every call, so the result is close to it (no final blend)
    assert (soft[..., :, :3] - init[..., :, :3]).abs().max() < 0.05
    assert (soft[..., :, 5:] - init[..., :, 5:]).abs().max() > 0.01
