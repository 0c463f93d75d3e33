"""What the sampling loops take and report: progress, stop requests, img2img's partial start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
class PartialStart:
    """img2img: start from `init` noised with `noise` and run only the last `run_steps` steps of the
    schedule. The init is noised to the level of the first step run (the scheduler's `add_noise`, as
    diffusers' img2img pipelines do), or `noise_back` steps above it (A1111's DDIM/PLMS/UniPC noise one
    step above the first step they run). `run_steps` 0: no step runs and the init is the result."""

    init: torch.Tensor
    noise: torch.Tensor
    run_steps: int
    noise_back: int = 0
