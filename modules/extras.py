"""A1111's `modules.extras`: `run_pnginfo` (the PNG Info tab's reader); the Extras job itself is
`modules.postprocessing`."""

from __future__ import annotations

from modules.sumi.services.images.pnginfo import run_pnginfo

__all__ = ["run_pnginfo"]
