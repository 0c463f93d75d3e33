"""Wall-clock timing for the benches: CUDA work is synchronised before and after every run."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(
    fn: Callable[[], object], device: torch.device, runs: int = 5, warmup: bool = True
) -> float:
    """Median wall time of `runs` calls of `fn` (after one warm-up call unless `warmup` is False)."""
    if warmup:
        fn()
    times = []
    for _ in range(runs):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
