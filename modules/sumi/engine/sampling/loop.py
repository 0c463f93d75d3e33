"""The sampling loop: a diffusers scheduler driven step by step with our denoiser.

The loop owns what the pipelines hide: per-image generators for ancestral noise, progress callbacks
with the current latents (for live previews), and stopping early on interrupt or skip.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from modules.sumi.engine.sampling.samplers import BuiltScheduler


@dataclass
class StepInfo:
    step: int  # 0-based index of the model evaluation just done
    total: int
    latents: torch.Tensor
    denoised: torch.Tensor | None  # the scheduler's x0 estimate, when it gives one


class SamplingControl:
    """Asks the loop to stop: `interrupted` ends the job, `skipped` ends the current batch."""

    def __init__(self) -> None:
        self.interrupted = False
        self.skipped = False

    @property
    def should_stop(self) -> bool:
        return self.interrupted or self.skipped


Denoise = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def sample(
    denoise: Denoise,
    built: BuiltScheduler,
    noise: torch.Tensor,
    steps: int,
    *,
    generators: list[torch.Generator] | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    control: SamplingControl | None = None,
    progress_bar: bool = True,
) -> torch.Tensor:
    """Denoise `noise` (already on the model's device and dtype) in `steps` steps; return latents."""
    scheduler = built.scheduler
    scheduler.set_timesteps(steps, device=noise.device)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)
    timesteps = scheduler.timesteps
    latents = noise * scheduler.init_noise_sigma
    step_kwargs = _step_kwargs(scheduler, built.step_kwargs, generators)
    for i, t in enumerate(tqdm(timesteps, disable=not progress_bar, desc="Sampling", leave=False)):
        if control is not None and control.should_stop:
            break
        model_input = scheduler.scale_model_input(latents, t)
        model_output = denoise(model_input, t, i)
        result = scheduler.step(model_output, t, latents, return_dict=True, **step_kwargs)
        latents = result.prev_sample
        if callback is not None:
            callback(StepInfo(i, len(timesteps), latents, getattr(result, "pred_original_sample", None)))
    return latents


def _step_kwargs(scheduler, extra: dict, generators: list[torch.Generator] | None) -> dict:
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    if generators is not None and "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs
