"""Colour matching: per-channel histogram matching (numpy) and A1111's img2img colour correction.

Colour correction (opt `img2img_color_correction`): `setup_color_correction` keeps the init image in LAB
colour space; `apply_color_correction` matches the result's LAB histograms to it, channel by channel
(what A1111 gets from skimage's `match_histograms`), and keeps the result's own luminosity under the
corrected colours (A1111's `blendLayers(..., LUMINOSITY)`: the W3C "luminosity" blend mode)."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


def match_histograms(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`source` (N, C) with each channel's values mapped so its histogram is `reference`'s (M, C)."""
    matched = np.empty_like(source, dtype=np.float64)
    for c in range(source.shape[1]):
        values, inverse, counts = np.unique(source[:, c], return_inverse=True, return_counts=True)
        ref_values, ref_counts = np.unique(reference[:, c], return_counts=True)
        quantiles = np.cumsum(counts) / source.shape[0]
        ref_quantiles = np.cumsum(ref_counts) / reference.shape[0]
        matched[:, c] = np.interp(quantiles, ref_quantiles, ref_values)[inverse.reshape(-1)]
    return matched


def setup_color_correction(image: Image.Image) -> np.ndarray:
    """A1111: the image in LAB colour space (uint8, H x W x 3), the target of the colour correction."""
    import cv2

    log.info("Calibrating color correction.")
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB)


def apply_color_correction(correction: np.ndarray, original_image: Image.Image) -> Image.Image:
    """A1111: `original_image` with its LAB histograms matched to `correction`'s, then its own luminosity
    put back under the corrected colours."""
    import cv2

    log.info("Applying color correction.")
    rgb = np.asarray(original_image.convert("RGB"))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    target = np.asarray(correction).reshape(-1, 3)
    matched = match_histograms(lab.reshape(-1, 3), target).reshape(lab.shape)
    matched = np.clip(matched, 0, 255).astype(np.uint8)  # skimage keeps the image's dtype (truncates)
    corrected = cv2.cvtColor(matched, cv2.COLOR_LAB2RGB)
    return Image.fromarray(luminosity_blend(corrected, rgb))


def luminosity_blend(background: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """The W3C "luminosity" blend (uint8 RGB): `background`'s hue and saturation, `foreground`'s
    luminosity (0.3 R + 0.59 G + 0.11 B), colours brought back into range by ClipColor."""
    base = background.astype(np.float64) / 255.0
    lum_target = _lum(foreground.astype(np.float64) / 255.0)
    colour = base + (lum_target - _lum(base))[..., None]
    lum = _lum(colour)[..., None]
    low = colour.min(axis=-1, keepdims=True)
    high = colour.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        colour = np.where(
            low < 0, lum + (colour - lum) * lum / np.where(lum - low == 0, 1, lum - low), colour
        )
        colour = np.where(
            high > 1, lum + (colour - lum) * (1 - lum) / np.where(high - lum == 0, 1, high - lum), colour
        )
    return np.clip(np.rint(colour * 255.0), 0, 255).astype(np.uint8)


def _lum(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.3 + rgb[..., 1] * 0.59 + rgb[..., 2] * 0.11
