"""Post-processing shared by the soft-edge annotators (HED, PiDiNet, TEED): quantised "safe" edges, the
thin scribble lines made from soft edges, and the dark lines of a drawing (lineart_standard, Anyline)."""

from __future__ import annotations

import cv2
import numpy as np

from modules.sumi.engine.controlnet.image_fit import resize_with_pad

# 3x3 lines through the centre: horizontal, vertical and both diagonals
_LINES = [
    np.array(rows, dtype=np.uint8)
    for rows in (
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
    )
]


def fused_strength(side_outputs: list[np.ndarray], height: int, width: int, steps: int = 0) -> np.ndarray:
    """Edge strength (HxW uint8) from a network's side outputs (float32 logits at any size): each brought
    to `height` x `width` (bilinear), averaged, squashed with a sigmoid, and cut to `steps` + 1 levels
    when `steps` is not 0 (the HED family's fusion)."""
    resized = [cv2.resize(side, (width, height), interpolation=cv2.INTER_LINEAR) for side in side_outputs]
    strength = 1 / (1 + np.exp(-np.mean(np.stack(resized, axis=2), axis=2).astype(np.float64)))
    if steps:
        strength = quantised(strength, steps)
    return (strength * 255.0).clip(0, 255).astype(np.uint8)


def quantised(edges: np.ndarray, steps: int = 2) -> np.ndarray:
    """Edge strengths in 0..1 cut to `steps` + 1 levels ("safe" edges: no faint gradients for the
    ControlNet to read as texture); float32, as the extension computes them."""
    levels = (edges.astype(np.float32) * np.float32(steps + 1)).astype(np.int32)
    return levels.astype(np.float32) / np.float32(steps)


def ridge_lines(strength: np.ndarray, threshold: float, sigma: float) -> np.ndarray:
    """White (255) where the blurred strength is a maximum along some direction (a ridge) and above
    `threshold`; black elsewhere (non-maximum suppression)."""
    blurred = cv2.GaussianBlur(strength.astype(np.float32), (0, 0), sigma)
    ridge = np.zeros(blurred.shape, dtype=bool)
    for line in _LINES:
        ridge |= cv2.dilate(blurred, kernel=line) == blurred
    return np.where(ridge & (blurred > threshold), 255, 0).astype(np.uint8)


def scribble(soft_edges: np.ndarray) -> np.ndarray:
    """Bold scribble lines from a soft-edge map (uint8): its ridges over 127, blurred (sigma 3) and
    every pixel over 4 made white."""
    lines = cv2.GaussianBlur(ridge_lines(soft_edges, 127, 3.0), (0, 0), 3.0)
    return np.where(lines > 4, 255, 0).astype(np.uint8)


def dark_lines(image: np.ndarray, resolution: int) -> np.ndarray:
    """Dark lines on a light background (HxW uint8, white lines): how much darker each pixel is than its
    blurred surroundings, scaled by the median line's darkness; at the processor resolution, padded
    to multiples of 64 and cut back (lineart_standard)."""
    padded = resize_with_pad(image, resolution)
    pixels = padded.image.astype(np.float32)
    darkness = np.min(cv2.GaussianBlur(pixels, (0, 0), 6.0) - pixels, axis=2).clip(0, 255)
    lines = darkness[darkness > 8]
    darkness /= max(16.0, float(np.median(lines))) if lines.size else 16.0
    darkness *= 127
    return padded.unpad(darkness.clip(0, 255).astype(np.uint8))


def without_small_specks(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """`mask` (HxW bool) without its 4-connected parts of fewer than `min_pixels` pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    large = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    large[0] = False  # the background
    return np.take(large, np.asarray(labels, dtype=np.intp))
