"""One choice in the upscaler lists (A1111's `UpscalerData`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class UpscalerEntry:
    """One choice in the upscaler lists (A1111's `UpscalerData`)."""

    name: str
    kind: Literal["none", "resample", "model"]
    path: Path | None = None  # model upscalers: the weights file
    scale: float = 4.0  # model upscalers: the model's own factor; A1111 lists 4 for the resamplers
    folder: str | None = None  # model upscalers: "ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT", ...
