"""The size the dataset preparation scripts crop and split to: the Upscale script's "Scale to" size, or
the picture's size times "Scale by" (A1111's `pp.shared.target_width/height`, set in the first pass
whether or not an upscaler is picked)."""

from __future__ import annotations

from modules.scripts_postprocessing import PostprocessedImage
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.postprocessing.service import MAX_OUTPUT_PIXELS
from modules.sumi.services.settings.limits import IMAGE_SIDE_CEILING


def target_size(pp: PostprocessedImage, script: str) -> tuple[int, int] | None:
    """(width, height), or None when no script announced one; a size too big to hold is refused
    before any picture is resized to it."""
    width, height = pp.shared.target_width, pp.shared.target_height
    if not width or not height:
        return None
    width, height = int(width), int(height)
    if width * height > MAX_OUTPUT_PIXELS or max(width, height) > IMAGE_SIDE_CEILING:
        raise InvalidRequestError(
            f"{script}: the target size {width}x{height} is too large; Extras results may hold at most "
            f"{MAX_OUTPUT_PIXELS // (1024 * 1024)} megapixels (set the size with Upscale's Scale to)"
        )
    return width, height
