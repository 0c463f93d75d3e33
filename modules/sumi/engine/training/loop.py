"""One optimisation loop for every trainer kind.

A trainer hands over its parameters, an optimizer, the schedules and a function that computes the
loss of one micro-batch; the loop applies the learning rate, accumulates gradients, clips them, steps
the optimizer and reports each step. It stops when the steps are done, the schedule ends, or
`should_stop()` says so (interrupt).

Determinism: micro-batch (step, k) gets a generator seeded from (seed, step, k), and the global RNG
(dropout) is forked and seeded the same way, so a run resumed at step s draws exactly what the
uninterrupted run drew from step s on: resume needs only the parameters, the optimizer state and s.

fp16 mixed precision passes a `torch.amp.GradScaler`: the loss is scaled before backward, the gradients
unscaled before clipping, and a step whose gradients overflowed is skipped (the scaler's state then
belongs in the resume file too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule

MicroBatchLoss = Callable[[int, int, torch.Generator], torch.Tensor]
"""(step, micro-batch index within the step, generator) -> the scalar loss of that micro-batch."""

CLIP_MODES = ("disabled", "value", "norm")


@dataclass(frozen=True)
class LoopSettings:
    steps: int
    learn_rate: LearnRateSchedule
    gradient_accumulation: int = 1
    clip_grad_mode: str = "disabled"
    clip_grad: LearnRateSchedule | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise TrainingError(f"the number of steps must be at least 1 (got {self.steps})")
        if self.gradient_accumulation < 1:
            raise TrainingError("gradient accumulation must be at least 1")
        if self.clip_grad_mode not in CLIP_MODES:
            raise TrainingError(
                f"gradient clipping {self.clip_grad_mode!r}: expected one of {', '.join(CLIP_MODES)}"
            )
        if self.clip_grad_mode != "disabled" and self.clip_grad is None:
            raise TrainingError("gradient clipping needs a clip value")


@dataclass(frozen=True)
class StepReport:
    step: int  # steps completed, counting this one
    loss: float  # mean loss over this step's micro-batches
    learn_rate: float


def micro_seed(seed: int, step: int, micro: int) -> int:
    """A 63-bit seed for micro-batch (step, micro) of a run seeded with `seed`."""
    mixed = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + micro * 0x94D049BB133111EB) & (2**64 - 1)
    mixed ^= mixed >> 31
    return mixed & (2**63 - 1)


def run_loop(
    parameters: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    settings: LoopSettings,
    loss_for: MicroBatchLoss,
    *,
    start_step: int = 0,
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Train from `start_step` to `settings.steps`; returns the number of steps completed in total."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise TrainingError("nothing to train: no parameter requires a gradient")
    step = start_step
    while step < settings.steps:
        if should_stop is not None and should_stop():
            break
        rate = settings.learn_rate.rate_at(step)
        if rate is None:
            break
        for group in optimizer.param_groups:
            group["lr"] = rate * group.get("lr_scale", 1.0)
        loss = _accumulate(settings, loss_for, step, scaler)
        if scaler is not None:
            scaler.unscale_(optimizer)
        _clip(params, settings, step)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if on_step is not None:
            on_step(StepReport(step, loss, rate))
    return step


def _accumulate(
    settings: LoopSettings, loss_for: MicroBatchLoss, step: int, scaler: torch.amp.GradScaler | None = None
) -> float:
    total = 0.0
    count = settings.gradient_accumulation
    for micro in range(count):
        seed = micro_seed(settings.seed, step, micro)
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=_cuda_devices()):
            torch.manual_seed(seed)
            loss = loss_for(step, micro, generator)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at step {step + 1}: lower the learning rate "
                    "(or turn on gradient clipping)"
                )
            scaled = loss / count
            (scaled if scaler is None else scaler.scale(scaled)).backward()
        total += float(loss.detach())
    return total / count


def _clip(params: list[torch.Tensor], settings: LoopSettings, step: int) -> None:
    if settings.clip_grad_mode == "disabled" or settings.clip_grad is None:
        return
    limit = settings.clip_grad.rate_at(step)
    if limit is None or not math.isfinite(limit):
        return
    if settings.clip_grad_mode == "value":
        torch.nn.utils.clip_grad_value_(params, limit)
    else:
        torch.nn.utils.clip_grad_norm_(params, limit)


def _cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


OPTIMIZERS = ("AdamW", "Adam", "SGD", "AdamW8bit")


def make_optimizer(
    name: str, parameters: Iterable[torch.Tensor], *, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """A torch optimizer by name (the learning rate is set per step by the loop).

    "AdamW8bit" needs bitsandbytes and CUDA; without them it is a clear error, never a silent fallback."""
    params = [p for p in parameters if p.requires_grad]
    if name == "AdamW":
        return torch.optim.AdamW(params, lr=1e-4, weight_decay=weight_decay)
    if name == "Adam":
        return torch.optim.Adam(params, lr=1e-4, weight_decay=weight_decay)
    if name == "SGD":
        return torch.optim.SGD(params, lr=1e-4, weight_decay=weight_decay)
    if name == "AdamW8bit":
        return _adamw_8bit(params, weight_decay)
    raise TrainingError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def _adamw_8bit(params: list[torch.Tensor], weight_decay: float) -> torch.optim.Optimizer:
    if not any(p.is_cuda for p in params):
        raise TrainingError("8-bit AdamW runs on CUDA only; choose AdamW on this device")
    try:
        import bitsandbytes  # type: ignore[import-not-found]
    except ImportError:
        raise TrainingError("8-bit AdamW needs the bitsandbytes package (pip install bitsandbytes)") from None
    return bitsandbytes.optim.AdamW8bit(params, lr=1e-4, weight_decay=weight_decay)
