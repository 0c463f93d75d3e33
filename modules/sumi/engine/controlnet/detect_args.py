"""The resolved inputs every preprocessor's detector gets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectArgs:
    """Resolved inputs of a detector: sliders already defaulted."""

    resolution: int
    threshold_a: float
    threshold_b: float
    seed: int
