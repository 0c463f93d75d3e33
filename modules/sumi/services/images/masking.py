"""Masks for inpainting as A1111 handles them (`modules.masking`): the crop region around a mask, grown
to the processing aspect ratio, and the "fill" of a masked image with colours from around it."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps


def _as_image(mask: Any) -> Image.Image:
    return mask if isinstance(mask, Image.Image) else Image.fromarray(np.asarray(mask))


def get_crop_region_v2(mask: Any, pad: int = 0) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) of the non-zero part of `mask` grown by `pad`, within the image; None if empty."""
    image = _as_image(mask)
    box = image.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, image.width), min(y2 + pad, image.height)


def get_crop_region(mask: Any, pad: int = 0) -> tuple[int, int, int, int]:
    """As `get_crop_region_v2`, but an empty mask gives A1111's inverted box instead of None."""
    box = get_crop_region_v2(mask, pad)
    if box is not None:
        return box
    width, height = _as_image(mask).size
    return max(width - pad, 0), max(height - pad, 0), min(pad, width), min(pad, height)


def expand_crop_region(
    crop_region: tuple[int, int, int, int],
    processing_width: int,
    processing_height: int,
    image_width: int,
    image_height: int,
) -> tuple[int, int, int, int]:
    """Grow the region to the processing aspect ratio, shifting it back inside the image (A1111)."""
    x1, y1, x2, y2 = crop_region
    ratio_crop = (x2 - x1) / (y2 - y1)
    ratio_processing = processing_width / processing_height
    if ratio_crop > ratio_processing:
        desired = (x2 - x1) / ratio_processing
        diff = int(desired - (y2 - y1))
        y1, y2 = y1 - diff // 2, y2 + diff - diff // 2
        if y2 >= image_height:
            y1, y2 = y1 - (y2 - image_height), image_height
        if y1 < 0:
            y2, y1 = min(y2 - y1, image_height), 0
    else:
        desired = (y2 - y1) * ratio_processing
        diff = int(desired - (x2 - x1))
        x1, x2 = x1 - diff // 2, x2 + diff - diff // 2
        if x2 >= image_width:
            x1, x2 = x1 - (x2 - image_width), image_width
        if x1 < 0:
            x2, x1 = min(x2 - x1, image_width), 0
    return x1, y1, x2, y2


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The masked part of `image` filled with blurred colours from around it (A1111's "fill")."""
    filled = Image.new("RGBA", image.size)
    source = image.convert("RGBA")
    source.putalpha(ImageOps.invert(mask.convert("L")))
    source = source.convert("RGBa")  # premultiplied, so the blur does not darken the edges
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = source.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            filled.alpha_composite(blurred)
    return filled.convert("RGB")
