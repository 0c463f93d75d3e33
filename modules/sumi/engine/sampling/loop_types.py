"""What the sampling loops take and report: progress, stop requests, img2img's partial start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class StepInfo:
    step: int  # 0-based: the model call just done (diffusers schedulers), the sampler step (k_loop)
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


@dataclass
class Pause:
    """Stop the loop before the first model call for which `before(step, total, timestep)` is true (the
    refiner's switch), leaving the sampler mid-schedule: `resume=` with the same BuiltScheduler,
    generators and these fields goes on exactly where it stopped. `index` stays None when the loop ran to
    the end. A diffusers scheduler stops between steps; Sumi's own samplers stop at the model call itself
    (mid-step for a second-order sampler, as A1111) and keep their run in `suspended`. `close()` ends a
    suspended run that will not be resumed."""

    before: Callable[[int, int, torch.Tensor], bool]
    index: int | None = None  # the step the loop stopped before (or in)
    timesteps: torch.Tensor | None = None  # the timesteps the loop was running
    suspended: Any = None  # k_loop's stopped run (a SuspendedK)

    @property
    def stopped(self) -> bool:
        return self.index is not None

    def close(self) -> None:
        if self.suspended is not None:
            self.suspended.close()


@dataclass
class PartialStart:
    """img2img: start from `init` noised with `noise` and run only the last `run_steps` steps of the
    schedule. The init is noised to the level of the first step run (the scheduler's `add_noise`, as
    diffusers' img2img pipelines do), or `noise_back` steps above it (A1111's DDIM/PLMS/UniPC noise one
    step above the first step they run). `run_steps` 0: no step runs and the init is the result."""

    init: torch.Tensor
    noise: torch.Tensor
    run_steps: int
    noise_back: int = 0
    extra_noise: float = 0.0  # A1111's img2img_extra_noise: this much more noise on the noised init
    extra_noise_hook: ExtraNoiseHook | None = None  # may replace the extra noise (A1111's on_extra_noise)


ExtraNoiseHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (noise, init, noised)


def add_extra_noise(
    start: PartialStart, init: torch.Tensor, noised: torch.Tensor, scale: torch.Tensor | float
) -> torch.Tensor:
    """`noised` plus `start.extra_noise` times the noise (the hook's, when it gives other noise), times
    `scale`: 1 for latents in sigma scaling (k-diffusion), sqrt(alpha_bar) at the start level for
    latents in variance-preserving scaling (DDIM-style), which is the same amount of noise."""
    if start.extra_noise <= 0:
        return noised
    noise = start.noise.to(noised.dtype)
    if start.extra_noise_hook is not None:
        noise = start.extra_noise_hook(noise, init, noised).to(device=noised.device, dtype=noised.dtype)
    return noised + noise * start.extra_noise * scale
