"""A1111's `MemUsageMonitor` (`modules.memmon`), the VRAM watcher behind `shared.mem_mon`.

`monitor()` starts a watch (the lowest free VRAM is polled every `memmon_poll_rate` seconds, A1111's
setting, 8 by default), `read()` gives A1111's figures in bytes (`free`, `total`, `active`,
`active_peak`, `reserved`, `reserved_peak`, `system_peak`, `min_free`), `stop()` ends the watch and reads.
Without CUDA it is disabled, as A1111's: `read()` gives the figures it has (none).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import torch


class MemUsageMonitor(threading.Thread):
    def __init__(self, name: str, device: Any, opts: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.opts = opts
        self.run_flag = threading.Event()
        self.data: defaultdict[str, int] = defaultdict(int)
        self.disabled = self.device.type != "cuda" or not torch.cuda.is_available()

    def cuda_mem_get_info(self) -> tuple[int, int]:
        free, total = torch.cuda.mem_get_info(self.device)
        return int(free), int(total)

    def _poll_rate(self) -> float:
        return float(getattr(self.opts, "memmon_poll_rate", 8) or 0)

    def run(self) -> None:
        if self.disabled:
            return
        while True:
            self.run_flag.wait()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.data.clear()
            rate = self._poll_rate()
            if rate <= 0:
                self.run_flag.clear()
                continue
            self.data["min_free"] = self.cuda_mem_get_info()[0]
            while self.run_flag.is_set():
                self.data["min_free"] = min(self.data["min_free"], self.cuda_mem_get_info()[0])
                self.run_flag.wait(1 / rate)

    def dump_debug(self) -> None:
        for key, value in self.read().items():
            print(key, -(value // -(1024**2)))

    def monitor(self) -> None:
        """Start a watch (the thread starts with the first one)."""
        if not self.disabled and not self.is_alive():
            self.start()
        self.run_flag.set()

    def read(self) -> defaultdict[str, int]:
        if not self.disabled:
            free, total = self.cuda_mem_get_info()
            stats = torch.cuda.memory_stats(self.device)
            self.data["free"], self.data["total"] = free, total
            self.data["active"] = int(stats.get("active.all.current", 0))
            self.data["active_peak"] = int(stats.get("active_bytes.all.peak", 0))
            self.data["reserved"] = int(stats.get("reserved_bytes.all.current", 0))
            self.data["reserved_peak"] = int(stats.get("reserved_bytes.all.peak", 0))
            self.data["system_peak"] = total - self.data.get("min_free", free)
        return self.data

    def stop(self) -> defaultdict[str, int]:
        self.run_flag.clear()
        return self.read()
