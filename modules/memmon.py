"""A1111's `modules.memmon`: the VRAM watcher behind `shared.mem_mon` (engine/accel/vram_monitor.py)."""

from modules.sumi.engine.accel.vram_monitor import MemUsageMonitor

__all__ = ["MemUsageMonitor"]
