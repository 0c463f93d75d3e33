"""The sampling loop runs Sumi's k-diffusion samplers as it runs diffusers' schedulers: same denoiser,
hooks, progress, interrupt, img2img start and per-image noise; and through the engine on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import Extension, HookPoint, LoopContext, StepContext, hook
from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.sampling import loop
from modules.sumi.engine.sampling.denoiser import CFGDenoiser
from modules.sumi.engine.sampling.k_loop import KSampler
from modules.sumi.engine.sampling.noise import make_generators
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.sampling.schedules import ddim_timesteps
from tests.engine.k_reference import Gaussian, k_sampling

CONFIG = scheduler_config("epsilon")
DATA = Gaussian()
NEW_SAMPLERS = ["DPM++ 2M SDE Heun", "DPM++ 3M SDE", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"]


def _k(built) -> KSampler:
    assert isinstance(built.scheduler, KSampler)
    return built.scheduler


def _model_for(built):
    """The loop's denoiser for the Gaussian data: eps at the call's sigma (from the sampler)."""
    run = _k(built)

    def denoise(x_in: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        sigma = run.current_sigma
        assert sigma is not None
        x = x_in * math.sqrt(sigma**2 + 1)
        return (x - DATA.denoised(x, sigma)) / sigma

    return denoise


def _noise(batch: int = 1, seed: int = 3) -> torch.Tensor:
    return torch.randn((batch, 4, 6, 6), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "schedule", ["Align Your Steps", "KL Optimal", "Simple", "Normal", "Polyexponential"]
)
def test_a_diffusers_sampler_with_a_schedule_diffusers_lacks_is_k_diffusions(schedule):
    built = build_scheduler("Euler", schedule, CONFIG)
    assert isinstance(built.scheduler, KSampler) and built.schedule.label == schedule
    noise = _noise()
    ours = loop.sample(_model_for(built), built, noise, 8, progress_bar=False)
    sigmas = built.scheduler.sigmas(8)
    reference = k_sampling().sample_euler(DATA.denoised, noise * sigmas[0], sigmas, disable=True)
    assert (ours - reference).abs().max() < 1e-4 * reference.abs().max()


def test_unipc_ignores_a_schedule_diffusers_lacks_as_a1111_ignores_them_all():
    assert build_scheduler("UniPC", "Align Your Steps", CONFIG).schedule.label == "Automatic"


@pytest.mark.parametrize("sampler", ["DPM++ 3M SDE", "DPM++ 2M SDE Heun", "DPM fast", "Restart"])
def test_an_images_noise_does_not_depend_on_its_batch(sampler):
    """Brownian trees per seed (SDE samplers) and each image's own generator (the others), as A1111."""
    seeds = [101, 102]
    both = _noise(2)
    batch = build_scheduler(sampler, None, CONFIG, seeds=seeds)
    out = loop.sample(
        _model_for(batch), batch, both, 24, generators=make_generators(seeds), progress_bar=False
    )
    alone = build_scheduler(sampler, None, CONFIG, seeds=seeds[1:])
    single = loop.sample(
        _model_for(alone), alone, both[1:], 24, generators=make_generators(seeds[1:]), progress_bar=False
    )
    assert torch.allclose(out[1:], single, atol=1e-6)
    other = build_scheduler(sampler, None, CONFIG, seeds=[7, 8])
    reseeded = loop.sample(
        _model_for(other), other, both, 24, generators=make_generators([7, 8]), progress_bar=False
    )
    assert not torch.allclose(out, reseeded, atol=1e-3)


class Recorder(Extension):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.stopped: bool | None = None

    @hook(HookPoint.PRE_LOOP)
    def pre_loop(self, context: LoopContext) -> None:
        self.events.append(("pre_loop", context.total_steps))

    @hook(HookPoint.PRE_STEP)
    def pre_step(self, context: StepContext) -> None:
        self.events.append(("pre_step", context.step))

    @hook(HookPoint.POST_STEP)
    def post_step(self, context: StepContext) -> None:
        assert context.denoised is not None
        self.events.append(("post_step", context.step))

    @hook(HookPoint.POST_LOOP)
    def post_loop(self, context: LoopContext) -> None:
        self.events.append(("post_loop", context.total_steps))
        self.stopped = context.stopped


@pytest.mark.parametrize("sampler", NEW_SAMPLERS)
def test_hooks_and_progress_run_around_every_step_and_end_at_100_percent(sampler):
    from modules.sumi.engine.extensions import ExtensionManager

    recorder = Recorder()
    infos: list[loop.StepInfo] = []
    built = build_scheduler(sampler, None, CONFIG, seeds=[5])
    loop.sample(
        _model_for(built) if sampler != "DDIM CFG++" else _vp_model(built),
        built,
        _noise(),
        6,
        generators=make_generators([5]),
        callback=infos.append,
        progress_bar=False,
        extensions=ExtensionManager([recorder]),
    )
    assert infos and infos[-1].step == infos[-1].total - 1  # 100% at the end, DPM adaptive too
    posts = [step for kind, step in recorder.events if kind == "post_step"]
    pres = [step for kind, step in recorder.events if kind == "pre_step"]
    assert recorder.events[0][0] == "pre_loop" and recorder.events[-1][0] == "post_loop"
    assert len(pres) == len(posts) and posts[: len(set(posts))] == sorted(set(posts))
    assert recorder.stopped is False


def _vp_model(built):
    """DDIM CFG++'s denoiser call: eps of the Gaussian data in variance-preserving latents."""
    run = _k(built)

    def denoise(x_vp: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        sigma = run.current_sigma
        assert sigma is not None
        x = x_vp * math.sqrt(sigma**2 + 1)
        return (x - DATA.denoised(x, sigma)) / sigma

    return denoise


@pytest.mark.parametrize("sampler", ["DPM++ 3M SDE", "DPM adaptive", "Restart"])
def test_an_interrupt_stops_between_steps_and_returns_the_latents_so_far(sampler):
    from modules.sumi.engine.extensions import ExtensionManager

    control = loop.SamplingControl()
    infos: list[loop.StepInfo] = []

    def on_step(info: loop.StepInfo) -> None:
        infos.append(info)
        if info.step == 2:
            control.interrupted = True

    recorder = Recorder()
    built = build_scheduler(sampler, None, CONFIG, seeds=[5])
    out = loop.sample(
        _model_for(built),
        built,
        _noise(),
        12,
        generators=make_generators([5]),
        callback=on_step,
        control=control,
        progress_bar=False,
        extensions=ExtensionManager([recorder]),
    )
    assert [i.step for i in infos] == [0, 1, 2] and recorder.stopped is True
    assert torch.allclose(out, infos[-1].latents)


def test_img2img_starts_from_init_plus_noise_at_the_first_sigma_run():
    from modules.sumi.engine.extensions import ExtensionManager

    class Start(Extension):
        latents: torch.Tensor | None = None

        @hook(HookPoint.PRE_LOOP)
        def grab(self, context: LoopContext) -> None:
            self.latents = context.latents.clone()

    init, noise = _noise(seed=1), _noise(seed=2)
    built = build_scheduler("DPM++ 3M SDE", None, CONFIG, seeds=[5])
    start = Start()
    loop.sample(
        _model_for(built),
        built,
        noise,
        10,
        progress_bar=False,
        extensions=ExtensionManager([start]),
        start=loop.PartialStart(init, noise, 4),
    )
    sigmas = _k(built).sigmas(10)
    assert start.latents is not None and torch.allclose(start.latents, init + noise * sigmas[6])
    untouched = loop.sample(
        _model_for(built), built, noise, 10, progress_bar=False, start=loop.PartialStart(init, noise, 0)
    )
    assert torch.equal(untouched, init)


def test_ddim_cfgpp_img2img_noises_the_init_one_timestep_above_the_first_run():
    from modules.sumi.engine.extensions import ExtensionManager

    class Start(Extension):
        latents: torch.Tensor | None = None

        @hook(HookPoint.PRE_LOOP)
        def grab(self, context: LoopContext) -> None:
            self.latents = context.latents.clone()

    init, noise = _noise(seed=1), _noise(seed=2)
    built = build_scheduler("DDIM CFG++", None, CONFIG)
    start = Start()
    loop.sample(
        _vp_model(built),
        built,
        noise,
        10,
        progress_bar=False,
        extensions=ExtensionManager([start]),
        start=loop.PartialStart(init, noise, 4, noise_back=1),
    )
    a = _k(built).alphas_cumprod[ddim_timesteps(10)[4]]
    assert start.latents is not None and torch.allclose(
        start.latents, init * a.sqrt() + noise * (1 - a).sqrt()
    )


# -- through the engine, on a tiny model ------------------------------------------------------------


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    for module in model.modules():
        module.eval()
    return model


def _request(sampler: str, schedule: str = "Automatic", seeds=(11, 12), **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox"] * len(seeds),
        negative_prompts=["blurry"] * len(seeds),
        seeds=list(seeds),
        width=64,
        height=64,
        **{"steps": 5, "cfg_scale": 6.0, **kw},
        sampler=sampler,
        schedule=schedule,
    )


@pytest.fixture(scope="module")
def euler_latents(sd1):
    return engine.generate(sd1, _request("Euler"), progress_bar=False).latents


@pytest.fixture(scope="module")
def karras_latents(sd1):
    return engine.generate(sd1, _request("DPM++ 2M", "Karras"), progress_bar=False).latents


@pytest.mark.parametrize("sampler", NEW_SAMPLERS)
def test_every_new_sampler_generates_reproducibly_through_the_engine(sd1, euler_latents, sampler):
    first = engine.generate(sd1, _request(sampler), progress_bar=False)
    assert first.sampler == sampler and first.latents.shape == (2, 4, 8, 8)
    assert torch.isfinite(first.latents).all() and len(first.images) == 2
    again = engine.generate(sd1, _request(sampler), progress_bar=False)
    assert torch.equal(first.latents, again.latents)
    assert not torch.allclose(first.latents, euler_latents, atol=1e-3)
    assert not torch.allclose(first.latents[0], first.latents[1], atol=1e-3)  # per-image seeds


@pytest.mark.parametrize(
    "schedule", ["Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM"]
)
def test_every_new_schedule_type_generates_through_the_engine(sd1, karras_latents, schedule):
    result = engine.generate(sd1, _request("DPM++ 2M", schedule), progress_bar=False)
    assert result.schedule == schedule and torch.isfinite(result.latents).all()
    assert not torch.allclose(result.latents, karras_latents, atol=1e-4)


def test_the_cfg_denoiser_keeps_its_unconditional_prediction_and_scales_guidance(sd1):
    request = _request("DDIM CFG++", seeds=(11,))
    x = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500.0)
    denoiser = CFGDenoiser(sd1.unet, engine.conditioning(sd1, request), 5)
    denoiser.keep_uncond = True
    guided = denoiser(x, t, 0)
    uncond = denoiser.last_uncond
    assert uncond is not None
    unguided = CFGDenoiser(
        sd1.unet, engine.conditioning(sd1, _request("Euler", seeds=(11,), cfg_scale=0.0)), 5
    )
    assert torch.allclose(unguided(x, t, 0), uncond, atol=1e-5)
    denoiser.cfg_multiplier = 0.5
    half = denoiser(x, t, 0)
    cond = uncond + (guided - uncond) / request.cfg_scale
    assert torch.allclose(half, uncond + 0.5 * request.cfg_scale * (cond - uncond), atol=1e-5)


def test_ddim_cfgpp_divides_the_cfg_scale_by_12_5(sd1):
    """At CFG 12.5 CFG++ guides with scale 1: the UNet's uncond rows still run (the direction)."""
    low = engine.generate(sd1, _request("DDIM CFG++", cfg_scale=3.0), progress_bar=False)
    full = engine.generate(sd1, _request("DDIM CFG++", cfg_scale=12.5), progress_bar=False)
    assert torch.isfinite(full.latents).all() and not torch.allclose(low.latents, full.latents, atol=1e-4)
