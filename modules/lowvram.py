"""A1111's `modules.lowvram`: what extensions call to make room on the GPU before running their own models.

`send_everything_to_cpu()` moves the active model to the CPU; the next generation moves it back.
Sumi does not stream the model block by block (`--lowvram`/`--medvram` are accepted but not
implemented yet), so `setup_for_low_vram` and `apply` change nothing and `is_enabled` is False.
"""

from __future__ import annotations

from typing import Any

from modules import shared

module_in_gpu = None


def send_everything_to_cpu() -> None:
    shared.app().models.offload()


def is_needed(sd_model: Any = None) -> bool:
    return False


def is_enabled(sd_model: Any = None) -> bool:
    return bool(getattr(sd_model, "lowvram", False))


def setup_for_low_vram(sd_model: Any, use_medvram: bool) -> None:
    """Sumi keeps the whole model on the device; nothing to set up."""


def apply(sd_model: Any) -> None:
    """See `setup_for_low_vram`."""
