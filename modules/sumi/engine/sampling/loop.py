"""The sampling loop: a diffusers scheduler driven step by step with our denoiser.

The loop owns what the pipelines hide: per-image generators for ancestral noise, progress callbacks
with the current latents (for live previews), and stopping early on interrupt or skip. It runs the
engine extensions' loop hooks: PRE_LOOP, PRE_STEP and POST_STEP around every step, POST_LOOP at the end
(the denoiser runs the model-call hooks). Samplers diffusers lacks run in `k_loop.sample_k`, which
keeps all of this.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from diffusers import DDIMScheduler
from tqdm.auto import tqdm

from modules.sumi.engine.extensions import ExtensionManager, HookPoint, LoopContext, StepContext
from modules.sumi.engine.sampling.k_loop import KSampler, sample_k
from modules.sumi.engine.sampling.loop_types import (
    Denoise,
    PartialStart,
    Pause,
    SamplingControl,
    StepInfo,
    add_extra_noise,
)
from modules.sumi.engine.sampling.noise import Generator
from modules.sumi.engine.sampling.noise_sources import randn_on
from modules.sumi.engine.sampling.philox import PhiloxGenerator
from modules.sumi.engine.sampling.samplers import BuiltScheduler


def sample(
    denoise: Denoise,
    built: BuiltScheduler,
    noise: torch.Tensor,
    steps: int,
    *,
    generators: list[Generator] | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    control: SamplingControl | None = None,
    progress_bar: bool = True,
    extensions: ExtensionManager | None = None,
    start: PartialStart | None = None,
    pause: Pause | None = None,
    resume: Pause | None = None,
) -> torch.Tensor:
    """Denoise `noise` (already on the model's device and dtype) in `steps` steps; return latents.
    With `start` (img2img), `steps` is the schedule's length and only its last `start.run_steps` run.
    With `pause`, the loop may stop early (see Pause; POST_LOOP then waits for the resumed run); with
    `resume` (a stopped Pause), `noise` is the latents it stopped with and the schedule goes on."""
    if isinstance(built.scheduler, KSampler):
        gens = [generators] if isinstance(generators, (torch.Generator, PhiloxGenerator)) else generators
        return sample_k(
            denoise,
            built.scheduler,
            noise,
            steps,
            generators=gens,
            callback=callback,
            control=control,
            progress_bar=progress_bar,
            extensions=extensions,
            start=start,
            pause=pause,
            resume=resume,
        )
    ext = extensions if extensions is not None else ExtensionManager()
    scheduler = built.stepping
    if resume is not None:
        if resume.index is None or resume.timesteps is None:
            raise ValueError("resume needs a Pause the loop stopped at")
        timesteps, begin, latents = resume.timesteps, resume.index, noise
    else:
        scheduler.set_timesteps(steps, device="cpu")
        if start is None:
            _set_begin_index(scheduler, 0)
            timesteps = scheduler.timesteps
            first = noise * scheduler.init_noise_sigma
        else:
            timesteps, first = _partial_start(scheduler, steps, start)
        begin = 0
        latents = _loop_hook(ext, HookPoint.PRE_LOOP, LoopContext(first, timesteps, len(timesteps)))
    total = len(timesteps)
    step_kwargs = _step_kwargs(scheduler, built.step_kwargs, generators)
    noise_of = _variance_noise_dtype(scheduler, step_kwargs)  # decided once, not per step
    stopped = False
    steps_left = timesteps[begin:]
    bar = tqdm(steps_left, disable=not progress_bar, desc="Sampling", leave=False)
    for i, t in enumerate(bar, start=begin):
        if control is not None and control.should_stop:
            stopped = True
            break
        if pause is not None and pause.before(i, total, t):
            pause.index, pause.timesteps = i, timesteps
            return latents
        latents = _step_hook(ext, HookPoint.PRE_STEP, StepContext(i, total, t, latents))
        model_input = scheduler.scale_model_input(latents, t)
        model_output = denoise(model_input, t, i)
        kwargs = (
            step_kwargs if noise_of is None else _with_variance_noise(step_kwargs, model_output, noise_of)
        )
        result = scheduler.step(model_output, t, latents, return_dict=True, **kwargs)
        denoised = getattr(result, "pred_original_sample", None)
        latents = _step_hook(ext, HookPoint.POST_STEP, StepContext(i, total, t, result.prev_sample, denoised))
        if callback is not None:
            callback(StepInfo(i, total, latents, denoised))
    return _loop_hook(ext, HookPoint.POST_LOOP, LoopContext(latents, timesteps, total, stopped))


def _set_begin_index(scheduler: Any, index: int) -> None:
    set_begin_index = getattr(scheduler, "set_begin_index", None)
    if set_begin_index is not None:
        set_begin_index(index)


def _partial_start(scheduler: Any, steps: int, start: PartialStart) -> tuple[torch.Tensor, torch.Tensor]:
    """The timesteps left to run and the noised init latents (diffusers' img2img indexing: a scheduler
    of order 2 has two timesteps per step)."""
    order = int(getattr(scheduler, "order", 1))
    run = min(max(start.run_steps, 0), steps)
    if run == 0:
        return scheduler.timesteps[:0], start.init
    first = (steps - run) * order
    noised_at = max(first - start.noise_back * order, 0)
    _set_begin_index(scheduler, noised_at)
    level = scheduler.timesteps[noised_at : noised_at + 1]
    latents = _add_noise(scheduler, start.init, start.noise, level)
    if start.extra_noise > 0:  # in the scheduler's scaling: what an init of ones keeps at this level
        ones, zeros = torch.ones_like(start.init[:1]), torch.zeros_like(start.init[:1])
        scale = _add_noise(scheduler, ones, zeros, level)
        latents = add_extra_noise(start, start.init, latents, scale)
    _set_begin_index(scheduler, first)
    return scheduler.timesteps[first:], latents


def _add_noise(scheduler: Any, init: torch.Tensor, noise: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """`scheduler.add_noise`, with the scheduler's tables left on the host: diffusers moves
    `alphas_cumprod` to the latents' device there, and the steps would then read it back every step."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    try:
        return scheduler.add_noise(init, noise, level)
    finally:
        if isinstance(alphas, torch.Tensor):
            scheduler.alphas_cumprod = alphas


def _loop_hook(ext: ExtensionManager, point: HookPoint, context: LoopContext) -> torch.Tensor:
    ext.run(point, context)
    return context.latents


def _step_hook(ext: ExtensionManager, point: HookPoint, context: StepContext) -> torch.Tensor:
    if ext.has(point):
        ext.run(point, context)
    return context.latents


def _variance_noise_dtype(scheduler: Any, kwargs: dict) -> Callable[[torch.Tensor], torch.dtype] | None:
    """For a step that takes `variance_noise`, the dtype of its fresh noise from the model output (DPM++ 2M
    SDE: float32, DDIM with eta: the output's, as diffusers draws them); None: Sumi draws none for it."""
    if (
        kwargs.get("generator") is None
        or "variance_noise" not in inspect.signature(scheduler.step).parameters
    ):
        return None
    if str(scheduler.config.get("algorithm_type", "")).startswith("sde-"):
        return lambda model_output: torch.float32
    if isinstance(scheduler, DDIMScheduler) and kwargs.get("eta", 0.0) > 0:
        return lambda model_output: model_output.dtype
    return None


def _with_variance_noise(
    kwargs: dict, model_output: torch.Tensor, dtype_of: Callable[[torch.Tensor], torch.dtype]
) -> dict:
    """The step's kwargs with its fresh noise drawn here: the same draws from the same generators as
    diffusers', sent without blocking (diffusers copies them blocking)."""
    noise = randn_on(model_output.shape, kwargs["generator"], model_output.device, dtype_of(model_output))
    return {**{k: v for k, v in kwargs.items() if k != "generator"}, "variance_noise": noise}


def _step_kwargs(scheduler: Any, extra: dict, generators: list[Generator] | None) -> dict:
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    if generators is not None and "generator" in accepted:
        kwargs["generator"] = _torch_generators(generators, "variance_noise" in accepted)
    return kwargs


def _torch_generators(generators: list[Generator], noise_drawn_here: bool) -> list[Generator]:
    """NV generators for a diffusers step that draws its own noise (no `variance_noise`): torch CPU
    generators of the same seeds, as diffusers cannot draw from anything else; Sumi draws the rest."""
    if noise_drawn_here or not isinstance(generators, list):  # one torch generator for every row
        return generators
    if not any(isinstance(g, PhiloxGenerator) for g in generators):
        return generators
    return [
        torch.Generator().manual_seed(g.seed) if isinstance(g, PhiloxGenerator) else g for g in generators
    ]


__all__ = ["Denoise", "PartialStart", "Pause", "SamplingControl", "StepInfo", "sample"]
