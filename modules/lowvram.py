"""A1111's `modules.lowvram`: the --medvram/--lowvram state of the model, and what extensions call to
make room on the GPU before running their own models.

Sumi's offloading lives in `modules.sumi.engine.accel.offload` (placed by the model manager from the
flags): under --medvram the text encoders, UNet and VAE each go to the GPU only while used; under
--lowvram the UNet is also streamed block by block. `send_everything_to_cpu()` sends every part to
RAM (without offloading: the whole model; the next generation brings it back).
"""

from __future__ import annotations

from typing import Any

from modules import shared

module_in_gpu = None  # A1111's name; Sumi's offloader keeps its own record (`resident()`)


def send_everything_to_cpu() -> None:
    shared.app().models.offload()


def is_needed(sd_model: Any = None) -> bool:
    """Whether the flags ask for offloading this model (--medvram-sdxl: SDXL models only)."""
    flags = shared.app().models.offload_flags
    return flags.policy(is_sdxl=bool(getattr(sd_model, "is_sdxl", False))) != "none"


def is_enabled(sd_model: Any = None) -> bool:
    """Whether `sd_model` is under --medvram/--lowvram now."""
    return bool(getattr(sd_model, "lowvram", False))


def setup_for_low_vram(sd_model: Any, use_medvram: bool) -> None:
    """Put the active model under medvram (`use_medvram`) or lowvram now, as A1111; it stays so while
    it is loaded. `sd_model` must be the active model (`shared.sd_model`)."""
    if is_enabled(sd_model):  # as A1111: set up once
        return
    models = shared.app().models
    if models.active is None or getattr(sd_model, "sumi_model", None) is not models.active.sd:
        raise ValueError("setup_for_low_vram: pass shared.sd_model, the active model")
    models.set_offload("med" if use_medvram else "low")


def apply(sd_model: Any) -> None:
    """A1111's `lowvram.apply`: the placement the flags ask for (what loading a model does)."""
    shared.app().models.set_offload(None)
