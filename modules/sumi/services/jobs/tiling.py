"""Tiling (seamless textures) for one job: A1111's `p.tiling`, the `tiling` setting and `Tiling: True`.

`p.tiling` None means the `tiling` setting (A1111's `process_images_inner`); the job's value is written
back to `p` so scripts, the infotext and the API's `info` see what ran. While the job runs (the img2img
encode, every batch, a script's re-decode, ControlNet models included) every Conv2d of the UNet and the
VAE pads circularly; the model is given back with its own padding modes when the job ends, however it
ends (engine.extensions.circular).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions.circular import CircularPadding, model_modules
from modules.sumi.engine.model import SDModel

INFOTEXT_KEY = "Tiling"


class JobTiling:
    """The job's tiling patch; `include` adds modules the job loads later (its ControlNet models)."""

    def __init__(self, enabled: bool, patch: CircularPadding) -> None:
        self.enabled = enabled
        self.patch = patch

    def include(self, *modules: nn.Module | None) -> None:
        if self.enabled:
            self.patch.add(*modules)


def resolve(p: Any, options: Any) -> bool:
    """The job's tiling: `p.tiling`, or the `tiling` setting when it is None (stored back on `p`)."""
    value = p.tiling
    if value is None:
        value = bool(getattr(options, "tiling", False))
    if not isinstance(value, (bool, int)):  # scripts may pass 0/1, as A1111's truth test allows
        raise InvalidRequestError(f"tiling must be true, false or null, got {value!r}")
    p.tiling = bool(value)
    return p.tiling


@contextmanager
def job_tiling(p: Any, model: SDModel, options: Any) -> Iterator[JobTiling]:
    """Circular padding on `model` for the block when the job tiles (nothing changes otherwise)."""
    enabled = resolve(p, options)
    with CircularPadding(model_modules(model) if enabled else ()) as patch:
        yield JobTiling(enabled, patch)


def infotext_value(p: Any) -> str | None:
    """A1111 writes `Tiling: True` only when the job tiled."""
    return "True" if p.tiling else None
