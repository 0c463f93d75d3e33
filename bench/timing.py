"""Wall-clock timing for the benches: CUDA work is synchronised before and after every run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_runs(
    fn: Callable[[int], object], device: torch.device, runs: int, first_seed: int = 1
) -> list[float]:
    """Wall times of `fn(seed)` for seeds first_seed, first_seed + 1, ... (`runs` calls, no warm-up)."""
    times = []
    for seed in range(first_seed, first_seed + runs):
        sync(device)
        start = time.perf_counter()
        fn(seed)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def median_seeded(fn: Callable[[int], object], device: torch.device, runs: int = 5) -> float:
    """Median wall time of `runs` calls `fn(1)`, `fn(2)`, ... after a warm-up call `fn(0)`."""
    fn(0)
    return statistics.median(timed_runs(fn, device, runs))


def median_seconds(
    fn: Callable[[], object], device: torch.device, runs: int = 5, warmup: bool = True
) -> float:
    """Median wall time of `runs` calls of `fn` (after one warm-up call unless `warmup` is False)."""
    if warmup:
        fn()
    return statistics.median(timed_runs(lambda _seed: fn(), device, runs))


def its_from_step_counts(steps: int, seconds_full: float, seconds_one_step: float) -> float | None:
    """Sampling steps per second from two job times: `steps` steps and 1 step, same everything else.

    The difference removes what a job costs besides its steps (prompt encoding, VAE decode, PNG)."""
    if steps <= 1 or seconds_full <= seconds_one_step:
        return None
    return (steps - 1) / (seconds_full - seconds_one_step)
