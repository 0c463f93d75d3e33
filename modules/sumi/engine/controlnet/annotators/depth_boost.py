"""Boosting monocular depth (Miangoleh et al., "Boosting Monocular Depth Estimation Models to
High-Resolution via Content-Adaptive Multi-Resolution Merging", CVPR 2021), as sd-webui-controlnet runs
it for depth_leres++.

A depth network sees the whole scene's layout at its own small size and fine detail only at large
sizes, where it loses the layout. So the picture is estimated twice — at the network's receptive field
(448 for LeReS) and at the largest size where edges still give context to nearly every pixel (R_x) —
and a merging network fuses the two. When the output is large enough for it (the processor resolution
is at least R_x), the picture is then scaled up and the patches denser in edges than the picture as a
whole are estimated the same way and merged into that base estimate one by one, largest first, each
fitted linearly to the base and blended in through a soft square mask.

Everything here is plain array work; the two networks come in as functions (`Estimate`, `Merge`), so
any depth network can be boosted and the algorithm can be checked with small stand-ins.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache

import cv2
import numpy as np

RECEPTIVE_FIELD = 448  # LeReS's
MERGE_SIDE = 1024  # the merging network's input and output size
WHOLE_SIZE_LIMIT = 1600  # R_max: the largest size the whole picture is estimated at
UPSCALE_LIMIT = 3  # ... and at most 3x the picture
CONTEXT_CONFIDENCE = 0.2  # the x of R_x: the share of pixels allowed no edge within the receptive field
SEARCH_STEP = 32  # the resolution search works at 1/32 scale
MASK_SIDE = 3000  # the blending mask is drawn once this large and scaled down to each patch

Estimate = Callable[[np.ndarray, int], np.ndarray]
"""(HxWx3 uint8 RGB picture, side) -> the network's raw depth (HxW float) with the picture scaled to
side x side for the network and the depth brought back to the picture's size."""
Merge = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(coarse, detailed) 1024x1024 estimates -> the merged 1024x1024 estimate in 0..1."""
Patch = tuple[int, int, int]  # x, y, side in the enlarged picture


def _gray(image: np.ndarray) -> np.ndarray:
    return np.dot(image[..., :3], [0.2989, 0.5870, 0.1140])


def _gradient(image: np.ndarray) -> np.ndarray:
    """|d/dy| + |d/dx| of the picture's grey (Sobel 3x3, float64): where the edges, the network's depth
    cues, are."""
    gray = _gray(image)
    return np.abs(cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3)) + np.abs(
        cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3)
    )


def _max_pooled(edges: np.ndarray, size: int) -> np.ndarray:
    """Max over n x n blocks (n = side // size), the last blocks padded with zeros."""
    n = max(edges.shape[0] // size, 1)
    rows, columns = -(-edges.shape[0] // n) * n, -(-edges.shape[1] // n) * n
    padded = np.zeros((rows, columns), edges.dtype)
    padded[: edges.shape[0], : edges.shape[1]] = edges
    return padded.reshape(rows // n, n, columns // n, n).max(axis=(1, 3))


def _whole_image_size(image: np.ndarray) -> tuple[int, float]:
    """R_x (the paper's section 5): the largest size, in steps of a quarter receptive field, at which
    dilating the edge map by the receptive field still leaves at most 20 % of the pixels uncovered;
    and the share of pixels near an edge at that size (section 6's K, which sizes the patches)."""
    side = int(min(image.shape[:2]))
    edges = cv2.resize(_gradient(image), (side, side))
    low, high = edges.min(), edges.max()
    edges = (edges >= low + 0.4 * (high - low)).astype(np.float64)
    field = np.ones((RECEPTIVE_FIELD // SEARCH_STEP,) * 2)
    quarter_field = np.ones((RECEPTIVE_FIELD // (4 * SEARCH_STEP),) * 2)
    limit = min(WHOLE_SIZE_LIMIT, UPSCALE_LIMIT * max(image.shape[:2]))
    best, pooled = RECEPTIVE_FIELD // SEARCH_STEP, None
    for size in range(best, int(limit / SEARCH_STEP), RECEPTIVE_FIELD // (2 * SEARCH_STEP)):
        pooled = cv2.resize(_max_pooled(edges, size), (size, size))
        pooled = (pooled >= 0.5).astype(np.float64)
        if (1 - cv2.dilate(pooled, field)).mean() > CONTEXT_CONFIDENCE:
            break
        best = size
    # A picture under 160 px is never searched; its K is not needed (it is never patched).
    near_edges = float(cv2.dilate(pooled, quarter_field).mean()) if pooled is not None else 0.0
    return best * SEARCH_STEP, near_edges


def _double_estimate(image: np.ndarray, side: int, estimate: Estimate, merge: Merge) -> np.ndarray:
    """The picture's estimates at the receptive field and at `side` merged, stretched to 0..1."""
    square = (MERGE_SIDE, MERGE_SIDE)
    coarse = cv2.resize(estimate(image, RECEPTIVE_FIELD), square, interpolation=cv2.INTER_CUBIC)
    detailed = cv2.resize(estimate(image, side), square, interpolation=cv2.INTER_CUBIC)
    merged = merge(coarse, detailed)
    low, high = merged.min(), merged.max()
    return (merged - low) / (high - low) if high > low else np.zeros_like(merged)


def _edge_density(integral: np.ndarray, x: int, y: int, side: int) -> float:
    total = integral[y + side, x + side] - integral[y, x + side] - integral[y + side, x] + integral[y, x]
    return total / (side * side)


def _grown(integral: np.ndarray, patch: Patch, density: float, step: int) -> Patch:
    """The patch enlarged step by step about its centre while it stays inside the picture and at
    least as dense in edges as the whole picture."""
    rows, columns = integral.shape
    x, y, side = patch
    while True:
        x, y, side = x - step // 2, y - step // 2, side + step
        if x < 0 or y < 0 or y + side >= rows or x + side >= columns:
            return patch
        if _edge_density(integral, x, y, side) < density:
            return patch
        patch = (x, y, side)


def _patches(image: np.ndarray, factor: float) -> list[Patch]:
    """Section 6's patches: a grid of twice-the-receptive-field squares (stride 3/8 of a side), those
    denser in edges than the picture kept and grown, largest first (the order they are merged in)."""
    gradient = _gradient(image)
    strong = gradient[gradient > 0]
    if not strong.size:
        return []
    gradient[gradient < strong.mean()] = 0
    density = gradient.sum() / gradient.size
    integral = cv2.integral(gradient)
    half = RECEPTIVE_FIELD
    stride = int(round(half * 0.75))
    height, width = image.shape[:2]
    grid = [
        (x - half, y - half, 2 * half)
        for x in range(half, width - half, stride)
        for y in range(half, height - half, stride)
    ]
    step = int(SEARCH_STEP / factor)
    chosen = [_grown(integral, p, density, step) for p in grid if _edge_density(integral, *p) >= density]
    return sorted(chosen, key=lambda patch: patch[2], reverse=True)


@cache
def _blend_mask() -> np.ndarray:
    """A square of ones 70 % wide, Gaussian-blurred to soft edges, 0..1 (float32). Drawn once: the blur
    takes seconds at this size."""
    mask = np.zeros((MASK_SIDE, MASK_SIDE), np.float32)
    border = int(0.15 * MASK_SIDE)
    mask[border : MASK_SIDE - border, border : MASK_SIDE - border] = 1
    sigma = int(MASK_SIDE / 16)
    kernel = int(2 * np.ceil(2 * sigma) + 1)
    mask = cv2.GaussianBlur(mask, (kernel, kernel), sigma)
    return ((mask - mask.min()) / (mask.max() - mask.min())).astype(np.float32)


def _merged_patch(base: np.ndarray, picture: np.ndarray, estimate: Estimate, merge: Merge) -> np.ndarray:
    """A patch's own double estimate merged with the base estimate's same region, fitted linearly to
    that region's values, at the region's size."""
    square = (MERGE_SIDE, MERGE_SIDE)
    detailed = _double_estimate(picture, 2 * RECEPTIVE_FIELD, estimate, merge)
    detailed = cv2.resize(detailed, square, interpolation=cv2.INTER_CUBIC)
    coarse = cv2.resize(base, square, interpolation=cv2.INTER_CUBIC)
    mapped = merge(coarse, detailed).reshape(-1)
    if np.ptp(mapped) > 0:
        with warnings.catch_warnings():  # a nearly flat patch fits poorly; that is the method's answer
            warnings.simplefilter("ignore", np.exceptions.RankWarning)
            fitted = np.polyval(np.polyfit(mapped, coarse.reshape(-1), deg=1), mapped)
    else:
        fitted = np.full(mapped.shape, coarse.mean(), np.float64)
    return cv2.resize(fitted.reshape(square), (base.shape[1], base.shape[0]), interpolation=cv2.INTER_CUBIC)


def _refined(
    whole: np.ndarray, image: np.ndarray, whole_size: int, near_edges: float, estimate: Estimate, merge: Merge
) -> np.ndarray:
    """The base estimate with every patch merged in, at the picture's size."""
    height, width = image.shape[:2]
    factor = max(min(1, 4 * near_edges * whole_size / WHOLE_SIZE_LIMIT), 0.2)
    if height > width:
        rows, columns = 2 * whole_size, round(2 * whole_size * width / height)
    else:
        rows, columns = round(2 * whole_size * height / width), 2 * whole_size
    rows, columns = int(round(rows / factor)), int(round(columns / factor))
    enlarged = cv2.resize(image, (columns, rows), interpolation=cv2.INTER_CUBIC)
    patches = _patches(enlarged, factor)
    # The patches are found in the enlarged picture and merged at the picture's own size.
    scale = height / rows
    size = (round(columns * scale), round(rows * scale))
    picture = cv2.resize(enlarged, size, interpolation=cv2.INTER_CUBIC)
    base = cv2.resize(whole, size, interpolation=cv2.INTER_CUBIC)
    refined = base.copy()
    for patch in patches:
        x, y, side = (int(v) for v in np.round(np.array(patch) * scale))
        region = (slice(y, y + side), slice(x, x + side))
        merged = _merged_patch(base[region], picture[region], estimate, merge)
        mask = cv2.resize(_blend_mask(), (merged.shape[1], merged.shape[0]), interpolation=cv2.INTER_LINEAR)
        refined[region] = np.multiply(refined[region], 1 - mask) + np.multiply(merged, mask)
    return cv2.resize(refined, (width, height), interpolation=cv2.INTER_CUBIC)


def boosted_depth(image: np.ndarray, estimate: Estimate, merge: Merge, max_size: int) -> np.ndarray:
    """The boosted depth (HxW float, far is large, 0..1 before patches) of an HxWx3 uint8 RGB picture;
    patches are merged in only when `max_size` (the extension passes the picture's longer side) reaches R_x."""
    whole_size, near_edges = _whole_image_size(image)
    whole = _double_estimate(image, whole_size, estimate, merge)
    if max_size < whole_size:
        return cv2.resize(whole, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    return _refined(whole, image, whole_size, near_edges, estimate, merge)
