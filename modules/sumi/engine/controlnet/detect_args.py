"""The resolved inputs every preprocessor's detector gets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DetectArgs:
    """Resolved inputs of a detector: sliders already defaulted."""

    resolution: int
    threshold_a: float
    threshold_b: float
    seed: int


@dataclass(frozen=True)
class Detection:
    """A detector's map, and what it read when it reads more than a picture: the OpenPose JSON of the
    people it found (what the extension's `/controlnet/detect` returns as `poses`)."""

    map: Any
    pose: dict[str, Any] | None = None
