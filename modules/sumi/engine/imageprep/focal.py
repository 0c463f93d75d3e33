"""Crop a picture to the target size around its focal point (A1111's "Auto focal point crop").

The picture is scaled to cover the target, then three kinds of points of interest are looked for:
faces (a face finder the caller provides), the most detailed window along the long side (entropy of
its grey levels) and corner features (OpenCV's good features to track, the bottom tenth greyed out so
watermarks do not pull the crop). Each kind that found something contributes its centroid with its
weight, the weights of the kinds that found nothing are left out, and the crop is centred on the
weighted average as far as the picture's borders allow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
FaceFinder = Callable[[np.ndarray], Sequence[Box]]  # RGB uint8 picture -> face boxes
FACE = "Face"
ENTROPY = "Entropy"
EDGE = "Edge"
COLOURS = {FACE: "#F00", ENTROPY: "#FF0", EDGE: "#00F"}
FOCUS_COLOUR = "#0F0"
ENTROPY_STEP = 4  # pixels between the windows compared along the long side
WATERMARK_BAND = 0.1  # the bottom tenth is ignored when looking for corners


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class FocalWeights:
    face: float = 0.9
    entropy: float = 0.15
    edges: float = 0.5


@dataclass
class Finding:
    """The points one kind found, their centroid and the share of the focal point it got."""

    points: list[Point]
    centroid: Point
    weight: float = 0.0


@dataclass
class Focus:
    point: Point
    findings: dict[str, Finding] = field(default_factory=dict)


def cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """The picture scaled (proportions kept) to the smallest size that covers `width` x `height`."""
    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def centroid(points: Sequence[Point]) -> Point:
    return Point(sum(p.x for p in points) / len(points), sum(p.y for p in points) / len(points))


def face_points(boxes: Sequence[Box]) -> list[Point]:
    """Where to look in each face: its middle across, a third of the way down (near the eyes)."""
    return [Point((x1 + x2) / 2, y1 + (y2 - y1) * 0.33) for x1, y1, x2, y2 in boxes]


def edge_points(image: Image.Image) -> list[Point]:
    """Up to 100 strong corners, at least 6% of the short side apart; none in the bottom tenth."""
    grey = np.array(image.convert("L"))
    grey[int(grey.shape[0] * (1 - WATERMARK_BAND)) :, :] = 0x99
    corners = cv2.goodFeaturesToTrack(
        grey,
        maxCorners=100,
        qualityLevel=0.04,
        minDistance=min(grey.shape) * 0.06,
        useHarrisDetector=False,
    )
    if corners is None:
        return []
    return [Point(float(x), float(y)) for x, y in corners.reshape(-1, 2)]


def entropy_point(image: Image.Image, width: int, height: int) -> Point | None:
    """The centre of the `width` x `height` window, slid along the long side, whose grey levels carry
    the most information (Shannon entropy); None when the picture is the window's size."""
    grey = np.asarray(image.convert("L"))
    along_x = grey.shape[1] > width
    if not along_x and grey.shape[0] <= height:
        return None
    lines = grey.T if along_x else grey  # one histogram per column (or row) along the long side
    window = width if along_x else height
    keys = np.arange(lines.shape[0])[:, None] * 256 + lines  # (line, grey level) -> one bin
    counts = np.bincount(keys.reshape(-1), minlength=lines.shape[0] * 256).reshape(-1, 256)
    cumulative = np.concatenate([np.zeros((1, 256), np.int64), counts.cumsum(axis=0)])
    starts = np.arange(0, lines.shape[0] - window + 1, ENTROPY_STEP)
    histograms = cumulative[starts + window] - cumulative[starts]
    best = int(starts[int(np.argmax([_entropy(h) for h in histograms]))])
    middle = best + window / 2
    return Point(middle, height / 2) if along_x else Point(width / 2, middle)


def _entropy(histogram: np.ndarray) -> float:
    p = histogram[histogram > 0] / histogram.sum()
    return float(-(p * np.log2(p)).sum())


def find_focus(
    image: Image.Image, width: int, height: int, weights: FocalWeights, find_faces: FaceFinder | None
) -> Focus:
    """The focal point of a picture already scaled to cover `width` x `height`."""
    found: dict[str, tuple[list[Point], float]] = {}
    if weights.edges > 0:
        found[EDGE] = (edge_points(image), weights.edges)
    if weights.entropy > 0:
        point = entropy_point(image, width, height)
        found[ENTROPY] = ([point] if point else [], weights.entropy)
    if weights.face > 0 and find_faces is not None:
        found[FACE] = (face_points(find_faces(np.asarray(image.convert("RGB")))), weights.face)
    found = {kind: pair for kind, pair in found.items() if pair[0]}
    total = sum(weight for _, weight in found.values())
    findings = {
        kind: Finding(points, centroid(points), weight / total) for kind, (points, weight) in found.items()
    }
    if not findings:
        return Focus(Point(image.width / 2, image.height / 2))
    x = sum(f.centroid.x * f.weight for f in findings.values())
    y = sum(f.centroid.y * f.weight for f in findings.values())
    return Focus(Point(x, y), findings)


def crop_box(size: tuple[int, int], focus: Point, width: int, height: int) -> tuple[int, int, int, int]:
    """The `width` x `height` box centred on `focus`, moved inside the picture."""
    left = min(max(round(focus.x - width / 2), 0), size[0] - width)
    top = min(max(round(focus.y - height / 2), 0), size[1] - height)
    return left, top, left + width, top + height


def focal_crop(
    image: Image.Image,
    width: int,
    height: int,
    weights: FocalWeights,
    find_faces: FaceFinder | None = None,
    debug: bool = False,
) -> list[Image.Image]:
    """[the crop] or, with `debug`, [the crop, the scaled picture annotated with what was found]."""
    scaled = cover(image, width, height)
    focus = find_focus(scaled, width, height, weights, find_faces)
    box = crop_box(scaled.size, focus.point, width, height)
    results = [scaled.crop(box)]
    if debug:
        results.append(annotate(scaled, focus, box))
    return results


def annotate(image: Image.Image, focus: Focus, box: tuple[int, int, int, int]) -> Image.Image:
    """A copy of `image` showing the crop (green box), each kind's centroid (a circle sized by its
    weight, labelled) and points, and the focal point (green circle)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    radius = min(out.size) * 0.07 / 2
    for kind, finding in focus.findings.items():
        colour, c, r = COLOURS[kind], finding.centroid, radius * finding.weight
        draw.ellipse((c.x - r, c.y - r, c.x + r, c.y + r), outline=colour)
        draw.text((c.x - r, c.y - r - 15), f"{kind}: {finding.weight:.02f}", fill=colour)
        if len(finding.points) > 1:
            for p in finding.points:
                draw.rectangle((p.x - 2, p.y - 2, p.x + 2, p.y + 2), outline=colour)
    p = focus.point
    draw.ellipse((p.x - radius, p.y - radius, p.x + radius, p.y + radius), outline=FOCUS_COLOUR)
    draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), outline=FOCUS_COLOUR)
    return out
