"""Figures read from a demo-model picture beyond `reading.read_image`, for the learning tests:

    stripe_energy(image)            # how strongly rows alternate at the stripe period (0 for none)
    mean_brightness(image)          # the mean grey level, 0..255
    coolness(image)                 # mean blue minus mean red, -255..255 (a cool grade raises it)
    shape_overlap(image, mask)      # IoU of the drawn shape with `mask`, moved onto the shape
    colour_hue(image)               # the mean hue of the saturated pixels (no segmentation)
    hollow_share(image)             # share of the outline nearer the background than the shape (a soft hole)
    colour_centre(image, colour)    # where the pixels of a named colour are (x, y)
    elongation(image)               # how much wider than high the drawn shape is (1 round, ~3.3 a bar)

Each is checked against rendered pictures in tests/tools/test_demo_measures.py.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np
from PIL import Image

from .reading import DIFFERENCE, MIN_AREA_FRACTION, _border, _core_colour, _largest_region
from .scenes import COLOURS
from .variants import STRIPE_PERIOD

FRAME = 4  # pixels in from the edge where hollow_share reads the background


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def stripe_energy(image: Image.Image, period: int = STRIPE_PERIOD) -> float:
    """The amplitude (grey levels) of the rows' mean brightness at `period` pixels: the Fourier
    component of the row profile at side/period cycles. Horizontal stripes give a large figure; a
    plain scene a small one (its shape changes the row profile only slowly)."""
    profile = _grey(image).mean(axis=1)
    profile = profile - profile.mean()
    spectrum = np.fft.rfft(profile)
    cycles = round(len(profile) / period)
    return float(2 * np.abs(spectrum[cycles]) / len(profile))


def mean_brightness(image: Image.Image) -> float:
    """The picture's mean grey level (0 black .. 255 white)."""
    return float(_grey(image).mean())


def coolness(image: Image.Image) -> float:
    """The picture's mean blue level minus its mean red level: higher for a cooler (bluer) picture,
    lower for a warmer one, whatever it shows."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return float(pixels[..., 2].mean() - pixels[..., 0].mean())


def foreground(image: Image.Image) -> np.ndarray | None:
    """The largest region that differs from the border's median colour (what read_image calls the
    shape), as a bool mask; None when nothing differs."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    background = np.median(_border(pixels), axis=0)
    mask = (np.linalg.norm(pixels - background, axis=2) > DIFFERENCE).astype(np.uint8)
    region = _largest_region(mask)
    return None if region is None else region.astype(bool)


def elongation(image: Image.Image) -> float | None:
    """How much wider than high the drawn shape is: the spread of its pixels across over their spread
    down (1 for the demo's shapes, about 3.3 for a bar); None when nothing is drawn."""
    region = foreground(image)
    if region is None:
        return None
    ys, xs = np.nonzero(region)
    return float(xs.std() / max(float(ys.std()), 1e-3))


def colour_mask(image: Image.Image, colour: str) -> np.ndarray:
    """Where the picture's pixels are nearest to the named colour (bool [H, W])."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    names = list(COLOURS)
    table = np.array([COLOURS[n] for n in names], dtype=np.float32)
    return np.argmin(((pixels[:, :, None, :] - table) ** 2).sum(axis=3), axis=2) == names.index(colour)


def colour_centre(image: Image.Image, colour: str) -> tuple[float, float] | None:
    """The centre (x, y) in pixels of the pixels nearest to the named colour (where a shape of that
    colour is drawn, also when it touches the border); None when under 1 % of the picture has it."""
    mask = colour_mask(image, colour)
    if mask.sum() < 0.01 * mask.size:
        return None
    y, x = _centre(mask)
    return float(x), float(y)


def shape_overlap(image: Image.Image, mask: np.ndarray) -> float:
    """Intersection over union of the drawn shape with `mask` after moving the mask's centre onto the
    shape's (the demo does not follow positions, so only the outline is compared). 0 for no shape."""
    region = foreground(image)
    if region is None or not mask.any():
        return 0.0
    dy, dx = (np.round(_centre(region) - _centre(mask))).astype(int)
    moved = np.roll(mask, (dy, dx), axis=(0, 1))
    union = np.logical_or(region, moved).sum()
    return float(np.logical_and(region, moved).sum() / union)


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()])


def hole_share(image: Image.Image) -> float:
    """The share of the drawn shape's outline that is a hole (background inside it): 0 for the
    dataset's solid shapes, 0.25 for variants' ring; 0 for no shape."""
    region = foreground(image)
    if region is None:
        return 0.0
    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(region.shape, dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    inside = filled.astype(bool)
    return float((inside & ~region).sum() / max(int(inside.sum()), 1))


def shape_hue(image: Image.Image) -> float | None:
    """The hue (degrees, 0 red, 120 green, 240 blue) of the drawn shape's core colour (what read_image
    names), or None without a shape or for a grey one."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    region = foreground(image)
    if region is None or region.sum() < MIN_AREA_FRACTION * region.size:
        return None
    background = np.median(_border(pixels), axis=0)
    r, g, b = _core_colour(pixels, region, background) / 255.0
    high, low = max(r, g, b), min(r, g, b)
    if high - low < 0.1:
        return None
    hue, _, _ = colorsys.rgb_to_hsv(r, g, b)
    return float(hue * 360.0)


def colour_hue(
    image: Image.Image, min_saturation: float = 0.5, min_value: float = 0.3, min_share: float = 0.01
) -> float | None:
    """The circular mean hue (degrees, 0 red, 120 green, 240 blue) of the picture's saturated pixels,
    or None when they cover less than `min_share` of it. On a white, black or grey background this is
    the shape's hue without finding the shape: the demo's drawings often have a tinted one-pixel frame,
    which makes `shape_hue`'s border-based segmentation take the whole picture for the shape."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32) / 255.0
    keep = (hsv[..., 1] >= min_saturation) & (hsv[..., 2] >= min_value)
    if keep.sum() < min_share * keep.size:
        return None
    angle = hsv[..., 0][keep] * 2 * np.pi
    return float(np.degrees(np.arctan2(np.sin(angle).mean(), np.cos(angle).mean())) % 360.0)


def hue_shift(before: float, after: float) -> float:
    """`after - before` in degrees, the short way round (-180, 180]."""
    return float((after - before + 180.0) % 360.0 - 180.0)


def hollow_share(image: Image.Image) -> float:
    """The share of the drawn shape's filled outline whose pixels are nearer the background colour than
    the shape's core colour: `hole_share` for a model's soft holes, whose muddy middle differs from
    both colours (0.25 for variants' ring, 0 for the dataset's solid shapes and for no shape). The
    background is read a few pixels in from the edge, where the demo sometimes draws a thin frame."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    background = np.median(_border(pixels[FRAME:-FRAME, FRAME:-FRAME]), axis=0)
    mask = (np.linalg.norm(pixels - background, axis=2) > DIFFERENCE).astype(np.uint8)
    region = _largest_region(mask)
    if region is None or region.sum() < MIN_AREA_FRACTION * region.size:
        return 0.0
    core = _core_colour(pixels, region.astype(bool), background)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(region.shape, dtype=np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    # the outline's anti-aliased rim is half-way too: only pixels away from the edge count
    interior = cv2.erode(filled, np.ones((5, 5), np.uint8)).astype(bool)
    near_background = np.linalg.norm(pixels - background, axis=2) < np.linalg.norm(pixels - core, axis=2)
    return float((interior & near_background).sum() / max(int(filled.sum()), 1))
