"""Live previews while sampling (A1111's `show_progress_type`): Approx cheap, Approx NN, TAESD, Full."""

from modules.sumi.engine.previews.render import (
    APPROX_CHEAP,
    APPROX_NN,
    FULL,
    METHODS,
    TAESD,
    PreviewNetworks,
    preview_pixels,
    to_image,
)

__all__ = [
    "APPROX_CHEAP",
    "APPROX_NN",
    "FULL",
    "METHODS",
    "TAESD",
    "PreviewNetworks",
    "preview_pixels",
    "to_image",
]
