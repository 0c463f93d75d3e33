"""What a demo-model image shows: the background colour, and the main shape's colour, position and kind.

    read_image(image)   # Reading(colour="red", shape="circle", position="left", background="blue")

The background is the median colour of the border (two pixels in); the shape is the largest connected region
that differs from it, its colour that of its pixels farthest from the background. Its outline is where the
pixels are at least half way from the background colour to the shape's (an edge the model blurs is read
where it is, not grown or shrunk by the contrast). Colours are the nearest of the dataset's named colours;
the position is the nearest named position of the region's centroid; the kind comes from the outline's
radial profile (its distance from the centroid round the circle): a circle's is flat, a triangle's swings
three times round, a square's four times and a star's five, so the strengths of those three harmonics
name the shape. Unlike area, hull and perimeter ratios, they survive the staircase edges of a VAE that
draws in 8-pixel cells (a pixelated circle's perimeter is that of a square). Any part is None when the image
shows nothing that can be read. The reader is checked against rendered scenes, blurred, noisy and
pixelated (tests/tools), so it measures the model, not itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .scenes import COLOURS, POSITIONS

MIN_AREA_FRACTION = 0.01  # a region smaller than this share of the image is not a shape
FRAME = 2  # the border's pixels that are skipped (see _border)
DIFFERENCE = 60.0  # RGB distance from the background that counts as foreground
COVERAGE = 0.5  # the outline: pixels this far from the background colour towards the shape's
PROFILE_BINS = 90  # the radial profile's angles
# strengths of the radial profile's 3rd, 4th and 5th harmonics (relative to its mean) of each shape as
# rendered, the same at both sizes to 0.01; the nearest one names a region
PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "circle": (0.0, 0.0, 0.0),
    "square": (0.0, 0.148, 0.0),
    "triangle": (0.291, 0.0, 0.0),
    "star": (0.0, 0.0, 0.373),
}


@dataclass(frozen=True)
class Reading:
    colour: str | None
    shape: str | None
    position: str | None
    background: str | None


def nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    table = np.array([COLOURS[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((table - rgb.astype(np.float32)) ** 2).sum(axis=1)))]


def read_image(image: Image.Image) -> Reading:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    side = pixels.shape[0]
    background_rgb = np.median(_border(pixels), axis=0)
    mask = (np.linalg.norm(pixels - background_rgb, axis=2) > DIFFERENCE).astype(np.uint8)
    region = _largest_region(mask)
    background = nearest_colour(background_rgb)
    if region is None or region.sum() < MIN_AREA_FRACTION * mask.size:
        return Reading(None, None, None, background)
    core = _core_colour(pixels, region.astype(bool), background_rgb)
    covered = _covered_region(pixels, background_rgb, core)
    region = region if covered is None else covered
    ys, xs = np.nonzero(region)
    position = _nearest_position(xs.mean() / side, ys.mean() / side)
    return Reading(nearest_colour(core), shape_of(region), position, background)


def shape_of(region: np.ndarray) -> str | None:
    """The prototype nearest to the region's radial-profile harmonics (see the module doc)."""
    features = profile_harmonics(region)
    if features is None:
        return None
    return min(PROTOTYPES, key=lambda name: float(((features - np.array(PROTOTYPES[name])) ** 2).sum()))


def profile_harmonics(region: np.ndarray) -> np.ndarray | None:
    """Strengths of the 3rd, 4th and 5th harmonics of the outline's distance from the region's centroid
    (sampled at PROFILE_BINS angles, the farthest point in each), relative to the mean distance."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    moments = cv2.moments(region, binaryImage=True)
    if not contours or moments["m00"] <= 0:
        return None
    points = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    offsets = points - (moments["m10"] / moments["m00"], moments["m01"] / moments["m00"])
    angles = np.arctan2(offsets[:, 1], offsets[:, 0])
    bins = ((angles + math.pi) / (2 * math.pi) * PROFILE_BINS).astype(int) % PROFILE_BINS
    profile = np.full(PROFILE_BINS, np.nan)
    np.fmax.at(profile, bins, np.hypot(offsets[:, 0], offsets[:, 1]))
    known = ~np.isnan(profile)
    if known.sum() < 2 or profile[known].mean() <= 0:
        return None
    steps = np.arange(PROFILE_BINS)
    profile = np.interp(steps, steps[known], profile[known], period=PROFILE_BINS)
    spectrum = np.abs(np.fft.rfft(profile / profile.mean())) * 2 / PROFILE_BINS
    return spectrum[3:6]


def _covered_region(pixels: np.ndarray, background: np.ndarray, shape: np.ndarray) -> np.ndarray | None:
    """The largest region of pixels at least COVERAGE of the way from the background colour to the shape's."""
    axis = shape - background
    length = float(axis @ axis)
    if length <= 0:
        return None
    coverage = ((pixels - background) @ axis) / length
    region = _largest_region((coverage >= COVERAGE).astype(np.uint8))
    if region is None or region.sum() < MIN_AREA_FRACTION * region.size:
        return None
    return region


def _core_colour(pixels: np.ndarray, region: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The median of the region's pixels farthest from the background (edges blend into it)."""
    inside = pixels[region]
    distance = np.linalg.norm(inside - background, axis=1)
    return np.median(inside[distance >= 0.8 * distance.max()], axis=0)


def _border(pixels: np.ndarray) -> np.ndarray:
    """The ring of pixels FRAME in from the edge: the demo's VAE draws a tinted frame one pixel wide,
    which on a white background is far enough from white to make the background read as the shape."""
    inner = pixels[FRAME:-FRAME, FRAME:-FRAME]
    return np.concatenate([inner[0], inner[-1], inner[:, 0], inner[:, -1]])


def _largest_region(mask: np.ndarray) -> np.ndarray | None:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return (labels == largest).astype(np.uint8)


def _nearest_position(x: float, y: float) -> str:
    return min(POSITIONS, key=lambda name: (POSITIONS[name][0] - x) ** 2 + (POSITIONS[name][1] - y) ** 2)


def colour_shares(image: Image.Image) -> dict[str, float]:
    """The share of the image's pixels nearest to each named colour (sums to 1)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)
    names = list(COLOURS)
    table = np.array([COLOURS[n] for n in names], dtype=np.float32)
    nearest = np.argmin(((pixels[:, None, :] - table[None]) ** 2).sum(axis=2), axis=1)
    counts = np.bincount(nearest, minlength=len(names))
    return {name: float(counts[i]) / len(pixels) for i, name in enumerate(names)}
