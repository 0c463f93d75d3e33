"""What a demo-model image shows: the background colour, and the main shape's colour, position and kind.

    read_image(image)   # Reading(colour="red", shape="circle", position="left", background="blue")

The background is the median colour of the border (two pixels in); the shape is the largest connected region that
differs from it, its colour that of its pixels farthest from the background. Colours are the nearest of the dataset's named colours; the position is the nearest
named position of the region's centroid; the kind is the nearest of the shapes' prototype features
(solidity: area / convex hull; extent: area / minimum bounding rectangle; circularity 4πA/P²). Any
part is None when the image shows nothing that can be read. The reader is checked against rendered
scenes (tests/tools), so it measures the model, not itself.
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
# (solidity, extent, circularity) of each shape as rendered; the nearest one names a region
PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "circle": (0.988, 0.799, 0.901),
    "square": (1.0, 1.0, 0.788),
    "triangle": (0.970, 0.508, 0.557),
    "star": (0.517, 0.363, 0.280),
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
    colour = nearest_colour(_core_colour(pixels, region.astype(bool), background_rgb))
    ys, xs = np.nonzero(region)
    position = _nearest_position(xs.mean() / side, ys.mean() / side)
    return Reading(colour, shape_of(region), position, background)


def shape_of(region: np.ndarray) -> str | None:
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    hull = cv2.contourArea(cv2.convexHull(contour))
    (_, _), (w, h), _ = cv2.minAreaRect(contour)
    perimeter = cv2.arcLength(contour, True)
    if area <= 0 or hull <= 0 or w * h <= 0 or perimeter <= 0:
        return None
    features = np.array([area / hull, area / (w * h), 4 * math.pi * area / perimeter**2])
    return min(PROTOTYPES, key=lambda name: float(((features - np.array(PROTOTYPES[name])) ** 2).sum()))


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
