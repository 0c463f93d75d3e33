"""Post-processing shared by the soft-edge annotators (HED, PiDiNet): quantised "safe" edges and the
thin scribble lines made from soft edges."""

from __future__ import annotations

import cv2
import numpy as np

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
