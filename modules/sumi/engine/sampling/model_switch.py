"""The refiner's switch (A1111 1.6+ `sd_samplers_common.apply_refiner`): from the first model call whose
completed ratio reaches `at`, the rest of the SAME schedule runs on another model.

A1111 measures the ratio by noise level unless `refiner_switch_by_sample_steps` is set: the model call's
sigma is matched to the nearest of the model's 1000 training sigmas (index `k`) and the ratio is
`(999 - k) / 1000`; samplers without sigmas (DDIM, PLMS, UniPC in A1111) use the timestep as `k`. By
sampling steps the ratio is `step / total`. So `at` 1 never switches, and with the sigma rule 0.5 switches
at the step whose noise is nearest training timestep 499 or below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.samplers import BuiltScheduler, call_sigma


@dataclass
class ModelSwitch:
    """Run the schedule from the switch on `load()`'s model (called once, at the switch; the caller
    keeps that model loaded until the batch has returned). `by_steps`: A1111's setting
    `refiner_switch_by_sample_steps`."""

    at: float
    load: Callable[[], SDModel]
    by_steps: bool = False


def training_sigmas(built: BuiltScheduler) -> torch.Tensor:
    """The model's training sigmas, sqrt((1 - alpha_bar) / alpha_bar) per timestep, on the CPU."""
    alphas = torch.as_tensor(cast(Any, built.scheduler).alphas_cumprod).float().cpu()
    return ((1 - alphas) / alphas) ** 0.5


def completed_ratio(
    built: BuiltScheduler, step: int, total: int, timestep: torch.Tensor, by_steps: bool, table: torch.Tensor
) -> float:
    """A1111's completed ratio of the model call about to run (before its `scale_model_input`);
    `table` is `training_sigmas(built)`."""
    if by_steps:
        return step / total
    if built.spec.timestep_sampler:
        k = int(float(timestep))
    else:
        k = int(torch.argmin(torch.abs(table - call_sigma(built.scheduler, timestep))))
    return (999 - k) / 1000


def switch_test(switch: ModelSwitch, built: BuiltScheduler) -> Callable[[int, int, torch.Tensor], bool]:
    """`Pause.before` for the switch: true from the first call whose completed ratio reaches `at`."""
    table = training_sigmas(built)

    def before(step: int, total: int, timestep: torch.Tensor) -> bool:
        return completed_ratio(built, step, total, timestep, switch.by_steps, table) >= switch.at

    return before
