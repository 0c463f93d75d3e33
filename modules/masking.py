"""A1111's `modules.masking`: crop regions around an inpainting mask, and filling a masked image."""

from __future__ import annotations

from modules.sumi.services.images.masking import expand_crop_region, fill, get_crop_region, get_crop_region_v2

__all__ = ["expand_crop_region", "fill", "get_crop_region", "get_crop_region_v2"]
