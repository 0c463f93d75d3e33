"""Centre-crop a picture to a size chosen for it: among the widths and heights from `min_dim` to
`max_dim` in steps of 64, with an area between `min_area` and `max_area`, the one whose proportions
are close enough to the picture's (relative error at most `threshold`), either the largest area (ties:
the smaller error) or the smallest error (ties: the larger area). A1111's "Auto-sized crop"."""

from __future__ import annotations

from PIL import Image

SIZE_STEP = 64
MAXIMIZE_AREA = "Maximize area"
MINIMIZE_ERROR = "Minimize error"
OBJECTIVES = (MAXIMIZE_AREA, MINIMIZE_ERROR)


def proportion_error(width: int, height: int, size: tuple[int, int]) -> float:
    """0 when `size` has the picture's proportions; towards 1 the more they differ."""
    relative = (width / height) / (size[0] / size[1])
    return 1.0 - min(relative, 1.0 / relative)


def choose_size(
    width: int,
    height: int,
    *,
    min_dim: int,
    max_dim: int,
    min_area: int,
    max_area: int,
    objective: str,
    threshold: float,
) -> tuple[int, int] | None:
    """The crop size for a `width` x `height` picture, or None when no size fits the bounds."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown resizing objective {objective!r}; use {' or '.join(OBJECTIVES)}")
    sides = range(int(min_dim), int(max_dim) + 1, SIZE_STEP)
    candidates = [
        (w, h)
        for w in sides
        for h in sides
        if min_area <= w * h <= max_area and proportion_error(width, height, (w, h)) <= threshold
    ]
    if not candidates:
        return None

    def score(size: tuple[int, int]) -> tuple[float, float]:
        area, error = size[0] * size[1], proportion_error(width, height, size)
        return (area, -error) if objective == MAXIMIZE_AREA else (-error, area)

    return max(candidates, key=score)


def center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """The largest centred region with the proportions of `width` x `height`, resized to that size."""
    if image.height / height < image.width / width:  # wider than the target: trim the sides
        kept = width * image.height / height
        box = ((image.width - kept) / 2, 0.0, (image.width + kept) / 2, float(image.height))
    else:
        kept = height * image.width / width
        box = (0.0, (image.height - kept) / 2, float(image.width), (image.height + kept) / 2)
    return image.resize((width, height), Image.Resampling.LANCZOS, box=box)
