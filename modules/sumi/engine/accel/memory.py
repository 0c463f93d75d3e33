"""How much memory there is and how much a process used: RAM (psutil) and CUDA (torch.cuda counters).

Read by tiled VAE's automatic mode (`free_bytes`), by `/sdapi/v1/memory` (`report`, A1111's shape) and by
the per-job footer (`PeakTracker`)."""

from __future__ import annotations

import contextlib
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch


def free_bytes(device: torch.device) -> int:
    """Bytes a new allocation on `device` can still get: on CUDA the driver's free memory plus what
    PyTorch's caching allocator holds but does not use; elsewhere the system's available RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    return int(psutil.virtual_memory().available)


def peak_rss_bytes() -> int:
    """This process's peak resident set size since it started (the kernel's high-water mark)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux counts KiB, macOS bytes


def ram() -> dict[str, Any]:
    """A1111's `ram` entry: system free/used/total in bytes, plus this process's RSS and its peak."""
    try:
        memory = psutil.virtual_memory()
        process = psutil.Process().memory_info()
    except (OSError, psutil.Error) as error:  # a sandbox without /proc
        return {"error": f"{type(error).__name__}: {error}"}
    return {
        "free": memory.available,
        "used": memory.total - memory.available,
        "total": memory.total,
        "process": process.rss,
        "process_peak": peak_rss_bytes(),
    }


def cuda(device: torch.device | None = None) -> dict[str, Any]:
    """A1111's `cuda` entry: the driver's view (`system`) and the caching allocator's counters."""
    if not torch.cuda.is_available():
        return {"error": "CUDA is not available"}
    try:
        target = device if device is not None else torch.device("cuda", torch.cuda.current_device())
        free, total = torch.cuda.mem_get_info(target)
        stats = torch.cuda.memory_stats(target)
    except RuntimeError as error:
        return {"error": f"{type(error).__name__}: {error}"}

    def pair(name: str) -> dict[str, int]:
        return {
            "current": int(stats.get(f"{name}.all.current", 0)),
            "peak": int(stats.get(f"{name}.all.peak", 0)),
        }

    return {
        "system": {"free": int(free), "used": int(total - free), "total": int(total)},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {
            "retries": int(stats.get("num_alloc_retries", 0)),
            "oom": int(stats.get("num_ooms", 0)),
        },
    }


def report() -> dict[str, Any]:
    """`/sdapi/v1/memory`: {"ram": ..., "cuda": ...} as A1111 returns it."""
    return {"ram": ram(), "cuda": cuda()}


@dataclass(frozen=True)
class JobPeaks:
    """What one job used at its highest: CUDA bytes (None without CUDA) and the process's RAM."""

    rss: int  # peak resident memory of the process while the job ran (lifetime peak where not resettable)
    cuda_active: int | None = None  # A1111's "active": bytes in live tensors
    cuda_reserved: int | None = None  # "reserved": what PyTorch's allocator held from the driver
    cuda_system_used: int | None = None  # "Sys VRAM": used on the card by every process, at the end
    cuda_total: int | None = None  # the card's memory


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakTracker:
    """Resets the peak counters when a job starts and reads them when it ends.

    CUDA: the caching allocator's peak counters. RAM: Linux's VmHWM, reset through /proc/self/clear_refs
    ("5" resets the peak RSS); where that is not allowed the process's lifetime peak is reported."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self._cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")

    def start(self) -> None:
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        with contextlib.suppress(OSError):
            _CLEAR_REFS.write_text("5")

    def peaks(self) -> JobPeaks:
        rss = _vm_hwm() or peak_rss_bytes()
        if not self._cuda:
            return JobPeaks(rss)
        free, total = torch.cuda.mem_get_info(self.device)
        stats = torch.cuda.memory_stats(self.device)
        return JobPeaks(
            rss,
            int(stats.get("active_bytes.all.peak", 0)),
            int(stats.get("reserved_bytes.all.peak", 0)),
            int(total - free),
            int(total),
        )


def _vm_hwm() -> int | None:
    """Peak RSS since the last reset (Linux), in bytes."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
