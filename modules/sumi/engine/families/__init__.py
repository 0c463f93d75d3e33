"""The model family registry: which family a checkpoint is, and loading it.

Families are tried in order (most specific first): SDXL, SDXL refiner, SD2, SD1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families.base import ModelFamily, TextEncoderLayout, scheduler_config
from modules.sumi.engine.families.sd1 import SD1
from modules.sumi.engine.families.sd2 import SD2
from modules.sumi.engine.families.sdxl import SDXL
from modules.sumi.engine.families.sdxl_refiner import SDXLRefiner

FAMILIES: tuple[ModelFamily, ...] = (SDXL(), SDXLRefiner(), SD2(), SD1())

__all__ = [
    "FAMILIES",
    "SD1",
    "SD2",
    "SDXL",
    "ModelFamily",
    "SDXLRefiner",
    "TextEncoderLayout",
    "detect_family",
    "get_family",
    "scheduler_config",
]


def get_family(name: str) -> ModelFamily:
    """The registered family called `name` (case-insensitive)."""
    for family in FAMILIES:
        if family.name.lower() == name.lower():
            return family
    raise ModelLoadError(f"unknown model family {name!r}; known: {', '.join(f.name for f in FAMILIES)}")


def detect_family(state_dict: Mapping[str, Tensor], *, source: str = "") -> ModelFamily:
    """The first family whose signature keys the state dict has; ModelLoadError naming the layouts if none."""
    for family in FAMILIES:
        if family.matches(state_dict):
            return family
    expected = "\n".join(f"  - {f.expectation}" for f in FAMILIES)
    raise ModelLoadError(
        f"{source or 'this file'}: not a Stable Diffusion checkpoint Sumi knows{_guess(state_dict)}. "
        f"Expected one of these layouts (plus first_stage_model.* for the VAE):\n{expected}\n"
        f"The file has: {_key_summary(state_dict)}"
    )


def _key_summary(state_dict: Mapping[str, Tensor], limit: int = 8) -> str:
    groups = Counter(".".join(k.split(".")[:2]) for k in state_dict)
    shown = ", ".join(f"{g}.* ({n})" for g, n in groups.most_common(limit))
    return shown + (f", ... ({len(groups) - limit} more groups)" if len(groups) > limit else "")


def _guess(state_dict: Mapping[str, Tensor]) -> str:
    keys = list(state_dict)
    if any(k.startswith(("lora_", "lora_unet_", "lora_te")) or ".lora_" in k for k in keys):
        return " (it looks like a LoRA: put it in models/Lora)"
    if keys and all(
        k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "loss.")) for k in keys
    ):
        return " (it looks like a VAE: put it in models/VAE)"
    if any(k.startswith("control_model.") for k in keys):
        return " (it looks like a ControlNet: put it in models/ControlNet)"
    return ""
