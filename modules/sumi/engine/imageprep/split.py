"""Split a picture much taller (or wider) than the target into overlapping target-sized tiles.

The picture is scaled so that its short side matches the target's matching side, then tiles of the
target size are taken along the long side, evenly spaced from one end to the other, each overlapping
its neighbour by at least `overlap_ratio` of a tile.
"""

from __future__ import annotations

import math

from PIL import Image


def aspect_ratio_fit(width: int, height: int, target_width: int, target_height: int) -> float:
    """How well the picture's proportions fit the target's, along the picture's long side: 1 when they
    match, smaller the more elongated the picture is compared with the target."""
    if height > width:
        return (width * target_height) / (height * target_width)
    return (height * target_width) / (width * target_height)


def should_split(image: Image.Image, target_width: int, target_height: int, threshold: float) -> bool:
    """Split only a picture more elongated than the target, and only when its fit is at or below
    `threshold` (A1111's "Threshold": 0.5 splits pictures at least twice as long as the target)."""
    ratio = aspect_ratio_fit(image.width, image.height, target_width, target_height)
    return ratio < 1.0 and ratio <= threshold


def tile_offsets(length: int, tile: int, overlap_ratio: float) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering `length` pixels, evenly spaced, the first at 0
    and the last flush with the end, neighbours overlapping by at least `overlap_ratio` of a tile."""
    if length <= tile:
        return [0]
    overlap_ratio = min(max(overlap_ratio, 0.0), 0.95)
    count = max(2, math.ceil((length - tile * overlap_ratio) / (tile * (1.0 - overlap_ratio))))
    step = (length - tile) / (count - 1)
    return [int(step * i) for i in range(count)]


def split_picture(
    image: Image.Image, target_width: int, target_height: int, overlap_ratio: float
) -> list[Image.Image]:
    """Tiles of exactly `target_width` x `target_height`, in reading order (top to bottom for a tall
    picture, left to right for a wide one)."""
    if image.height > image.width:  # tall: width to the target's, tiles down the height
        scaled_height = max(target_height, image.height * target_width // image.width)
        scaled = image.resize((target_width, scaled_height), Image.Resampling.LANCZOS)
        offsets = tile_offsets(scaled_height, target_height, overlap_ratio)
        return [scaled.crop((0, y, target_width, y + target_height)) for y in offsets]
    scaled_width = max(target_width, image.width * target_height // image.height)
    scaled = image.resize((scaled_width, target_height), Image.Resampling.LANCZOS)
    offsets = tile_offsets(scaled_width, target_width, overlap_ratio)
    return [scaled.crop((x, 0, x + target_width, target_height)) for x in offsets]
