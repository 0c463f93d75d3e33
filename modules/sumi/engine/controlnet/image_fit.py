"""Control images sized as sd-webui-controlnet sizes them.

Three steps, each matching the extension (v1.1.455) so that maps come out pixel for pixel the same:

* `resize_with_pad`: before a preprocessor runs, its input is scaled so the *short* side equals the
  processor resolution and edge-padded right/bottom to multiples of 64; `PaddedImage.unpad` cuts the
  result back.
* `pixel_perfect_resolution`: the processor resolution that makes the map match the target size.
* `fit_to_target`: the detected map is brought to the generation size by a resize mode, with the
  extension's "high quality" resize (few-colour maps stay crisp, one-pixel edges stay one pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
import torch

from modules.sumi.engine.errors import InvalidRequestError

MAX_SIDE = 16384
MAX_PIXELS = 64 * 1024 * 1024


class PreprocessorError(InvalidRequestError):
    """A ControlNet preprocessor, resize mode or control image the engine cannot use."""


class ResizeMode(str, Enum):
    """sd-webui-controlnet's resize modes; the values are the names the UI and API use."""

    JUST_RESIZE = "Just Resize"
    CROP_AND_RESIZE = "Crop and Resize"
    RESIZE_AND_FILL = "Resize and Fill"


# Older names the extension still accepts; integers are its `ResizeMode.int_value()`.
_RESIZE_MODE_ALIASES = {
    "inner fit (scale to fit)": ResizeMode.CROP_AND_RESIZE,
    "scale to fit (inner fit)": ResizeMode.CROP_AND_RESIZE,
    "outer fit (shrink to fit)": ResizeMode.RESIZE_AND_FILL,
    "envelope (outer fit)": ResizeMode.RESIZE_AND_FILL,
}
_RESIZE_MODE_BY_INDEX = (ResizeMode.JUST_RESIZE, ResizeMode.CROP_AND_RESIZE, ResizeMode.RESIZE_AND_FILL)


def parse_resize_mode(mode: ResizeMode | str | int) -> ResizeMode:
    """A resize mode from its name (any case), a legacy alias, or its index 0/1/2."""
    if isinstance(mode, ResizeMode):
        return mode
    if isinstance(mode, int) and not isinstance(mode, bool) and 0 <= mode < len(_RESIZE_MODE_BY_INDEX):
        return _RESIZE_MODE_BY_INDEX[mode]
    if isinstance(mode, str):
        key = mode.strip().lower()
        for known in ResizeMode:
            if known.value.lower() == key:
                return known
        if key in _RESIZE_MODE_ALIASES:
            return _RESIZE_MODE_ALIASES[key]
    known_names = ", ".join(f"'{m.value}'" for m in ResizeMode)
    raise PreprocessorError(f"Unknown ControlNet resize mode {mode!r}; known: {known_names} (or 0, 1, 2)")


# --- input checks -----------------------------------------------------------------------------------


def check_size(height: int, width: int, what: str = "image") -> None:
    """Refuse empty or huge sizes before any buffer is allocated for them."""
    if height < 1 or width < 1:
        raise PreprocessorError(f"The ControlNet {what} is empty ({width}x{height})")
    if max(height, width) > MAX_SIDE or height * width > MAX_PIXELS:
        raise PreprocessorError(
            f"The ControlNet {what} is too large ({width}x{height}); the limit is {MAX_SIDE} pixels a side "
            f"and {MAX_PIXELS // (1024 * 1024)} megapixels"
        )


def to_rgb(image: np.ndarray, what: str = "image") -> np.ndarray:
    """HxW, HxWx1, HxWx3 or HxWx4 uint8 (or bool) -> contiguous HxWx3 uint8.

    Gray is repeated into three channels; RGBA is composited over *white*, as the extension's `HWC3`
    does (line art drawn on a transparent sheet stays dark lines on white).
    """
    array = np.asarray(image)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        raise PreprocessorError(f"The ControlNet {what} must hold 8-bit pixels, not {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise PreprocessorError(
            f"The ControlNet {what} must be gray, RGB or RGBA (HxW, HxWx3 or HxWx4), not shape {array.shape}"
        )
    check_size(array.shape[0], array.shape[1], what)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        array = _over_white(array)
    return np.ascontiguousarray(array)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    colour = rgba[:, :, :3].astype(np.float32)
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255.0
    return (colour * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)


# --- processor resolution ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PaddedImage:
    """An image scaled to the processor resolution and padded to multiples of 64."""

    image: np.ndarray
    height: int
    width: int

    def unpad(self, result: np.ndarray) -> np.ndarray:
        """Cut a detector's output (same size as `image`) back to the scaled, unpadded size."""
        return np.ascontiguousarray(result[: self.height, : self.width])


def resize_short_side(image: np.ndarray, resolution: int) -> np.ndarray:
    """Scale so the short side is `resolution`: bicubic when enlarging, area when shrinking."""
    raw_h, raw_w = image.shape[:2]
    k = float(resolution) / float(min(raw_h, raw_w))
    height, width = max(1, round(raw_h * k)), max(1, round(raw_w * k))
    check_size(height, width, f"image scaled to processor resolution {resolution}")
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _pad64(size: int) -> int:
    return -size % 64


def resize_with_pad(image: np.ndarray, resolution: int) -> PaddedImage:
    """`resize_short_side`, then edge-pad right and bottom to multiples of 64 (what detectors expect)."""
    scaled = resize_short_side(image, resolution)
    height, width = scaled.shape[:2]
    padding = [(0, _pad64(height)), (0, _pad64(width))] + [(0, 0)] * (scaled.ndim - 2)
    return PaddedImage(np.pad(scaled, padding, mode="edge"), height, width)


def pixel_perfect_resolution(
    raw_hw: tuple[int, int], target_hw: tuple[int, int], resize_mode: ResizeMode | str | int
) -> int:
    """The processor resolution whose map needs no rescaling for the target size.

    Resize and Fill fits the image inside the target (smaller factor); the other modes cover it.
    """
    raw_h, raw_w = raw_hw
    target_h, target_w = target_hw
    k0, k1 = target_h / raw_h, target_w / raw_w
    k = min(k0, k1) if parse_resize_mode(resize_mode) is ResizeMode.RESIZE_AND_FILL else max(k0, k1)
    return round(k * min(raw_h, raw_w))


# --- detected map -> target size --------------------------------------------------------------------


def fit_to_target(
    detected_map: np.ndarray,
    width: int,
    height: int,
    resize_mode: ResizeMode | str | int,
    fill: int | None = None,
) -> np.ndarray:
    """The detected map at exactly (height, width, 3), by the unit's resize mode.

    Just Resize stretches; Crop and Resize scales to cover and crops the centre; Resize and Fill scales
    to fit and fills the rest with the median colour of the map's border, or with `fill` when given
    (an inpaint mask is filled with 255: the padding is to be drawn, as the extension's outpainting).
    """
    mode = parse_resize_mode(resize_mode)
    check_size(height, width, "target size")
    source = to_rgb(detected_map, "detected map")
    if mode is ResizeMode.JUST_RESIZE:
        return high_quality_resize(source, width, height)
    if mode is ResizeMode.CROP_AND_RESIZE:
        return _crop_and_resize(source, width, height)
    return _resize_and_fill(source, width, height, fill)


def _scaled_size(source: np.ndarray, k: float) -> tuple[int, int]:
    old_h, old_w = source.shape[:2]
    return max(1, round(old_w * k)), max(1, round(old_h * k))


def _crop_and_resize(source: np.ndarray, width: int, height: int) -> np.ndarray:
    old_h, old_w = source.shape[:2]
    new_w, new_h = _scaled_size(source, max(height / old_h, width / old_w))
    scaled = high_quality_resize(source, max(new_w, width), max(new_h, height))
    top, left = (scaled.shape[0] - height) // 2, (scaled.shape[1] - width) // 2
    return np.ascontiguousarray(scaled[top : top + height, left : left + width])


def _resize_and_fill(source: np.ndarray, width: int, height: int, fill: int | None = None) -> np.ndarray:
    old_h, old_w = source.shape[:2]
    background = np.empty((height, width, 3), dtype=np.uint8)
    background[:] = border_median_colour(source) if fill is None else fill
    new_w, new_h = _scaled_size(source, min(height / old_h, width / old_w))
    scaled = high_quality_resize(source, min(new_w, width), min(new_h, height))
    top, left = (height - scaled.shape[0]) // 2, (width - scaled.shape[1]) // 2
    background[top : top + scaled.shape[0], left : left + scaled.shape[1]] = scaled
    return background


def border_median_colour(image: np.ndarray) -> np.ndarray:
    """Per-channel median of the outermost rows and columns (corners counted twice, as the extension)."""
    borders = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
    return np.median(borders, axis=0).astype(np.uint8)


def high_quality_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an HxWx3 uint8 map the way the extension does ("lvmin's high quality resize").

    Maps of 3..199 colours (segmentation, colour grids) use nearest neighbour so no new colours
    appear; black-and-white maps are resized smoothly and thresholded again with Otsu, and when they
    are mostly one-pixel lines (canny, scribbles) the lines are thinned back to one pixel.
    """
    if image.shape[:2] == (height, width):
        return image
    colours = count_colours(image)
    smaller = width * height < image.shape[0] * image.shape[1]
    bigger = width * height > image.shape[0] * image.shape[1]
    if 2 < colours < 200:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_AREA if smaller else cv2.INTER_CUBIC
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    if colours == 2 and image.min() < 16 and image.max() > 240:
        return _rebinarise(resized, one_pixel_edges=_is_one_pixel_edge(image), prune=bigger)
    return resized


def count_colours(image: np.ndarray) -> int:
    """Number of distinct RGB triples."""
    packed = image[:, :, 0].astype(np.uint32) << 16 | image[:, :, 1].astype(np.uint32) << 8 | image[:, :, 2]
    return int(np.unique(packed).size)


def _is_one_pixel_edge(binary: np.ndarray) -> bool:
    """True when an opening (erode, dilate) removes over half of the white: the map is thin lines."""
    kernel = np.ones((3, 3), dtype=np.uint8)
    opened = cv2.dilate(cv2.erode(binary, kernel), kernel)
    return int(np.count_nonzero(opened < binary)) * 2 > int(np.count_nonzero(binary > 127))


def _rebinarise(resized: np.ndarray, *, one_pixel_edges: bool, prune: bool) -> np.ndarray:
    gray = np.mean(resized.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
    if one_pixel_edges:
        gray = ridge_maxima(gray)
    _, binary = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if one_pixel_edges:
        binary = thin_lines(binary, prune=prune)
    return np.ascontiguousarray(np.stack([binary] * 3, axis=2))


# 3x3 line kernels: horizontal, vertical and the two diagonals.
_RIDGE_KERNELS = tuple(
    np.array(k, dtype=np.uint8)
    for k in (
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[0, 0, 1], [0, 1, 0], [1, 0, 0]],
    )
)


def ridge_maxima(gray: np.ndarray) -> np.ndarray:
    """Keep a pixel only where it is the maximum along at least one of the four line directions."""
    keep = np.zeros(gray.shape, dtype=bool)
    for kernel in _RIDGE_KERNELS:
        keep |= cv2.dilate(gray, kernel) == gray
    return np.where(keep, gray, 0).astype(gray.dtype)


def _hit_or_miss(rows: tuple[str, str, str]) -> np.ndarray:
    """A hit-or-miss element from text: 'x' must be set, '-' must be clear, '.' is either."""
    values = {"x": 1, "-": -1, ".": 0}
    return np.array([[values[c] for c in row] for row in rows], dtype=np.int32)


def _rotations(*patterns: tuple[str, str, str]) -> tuple[np.ndarray, ...]:
    """All four quarter turns of each pattern, in the order the extension applies them."""
    base = [_hit_or_miss(p) for p in patterns]
    return tuple(np.ascontiguousarray(np.rot90(k, turn)) for turn in range(4) for k in base)


# Classic morphological thinning elements, then the end-point elements used to prune one-pixel spurs.
_THINNING = _rotations(("---", ".x.", "xxx"), (".--", "xx-", ".x."))
_PRUNING = _rotations(("---", "-x-", "..-"), ("---", "-x-", "-.."))


def _remove_matches(binary: np.ndarray, elements: tuple[np.ndarray, ...]) -> bool:
    """Clear, one element after another, every pixel an element matches; True if any was cleared."""
    changed = False
    for element in elements:
        hits = cv2.morphologyEx(binary, cv2.MORPH_HITMISS, element) > 127
        if hits.any():
            binary[hits] = 0
            changed = True
    return changed


def thin_lines(binary: np.ndarray, *, prune: bool = True, max_rounds: int = 32) -> np.ndarray:
    """Thin a 0/255 map to one-pixel lines; with `prune`, also drop one-pixel spurs once."""
    result = binary.copy()
    for _ in range(max_rounds):
        if not _remove_matches(result, _THINNING):
            break
    if prune:
        _remove_matches(result, _PRUNING)
    return result


# --- map -> model input -----------------------------------------------------------------------------


def to_control_tensor(
    detected_map: np.ndarray, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """An HxWx3 uint8 map as the [1, 3, H, W] tensor in 0..1 that ControlNet models take as hint."""
    rgb = to_rgb(detected_map, "detected map")
    if not rgb.flags.writeable:
        rgb = rgb.copy()
    tensor = torch.from_numpy(rgb).to(torch.float32).div_(255.0).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=dtype).contiguous()


def to_inpaint_tensor(
    detected_map: np.ndarray,
    mask: np.ndarray,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The inpaint hint [1, 3, H, W]: the map in 0..1 where the mask (HxW uint8, white = redraw) is
    under half, -1 where it is over (sd-webui-controlnet's inpaint protocol)."""
    color = to_control_tensor(detected_map)
    if mask.shape[:2] != color.shape[2:]:
        raise PreprocessorError(
            f"inpaint mask is {mask.shape[1]}x{mask.shape[0]}, the map {color.shape[3]}x{color.shape[2]}"
        )
    masked = torch.from_numpy(np.ascontiguousarray(mask)).to(torch.float32).div(255.0).gt(0.5)
    hint = color.masked_fill(masked[None, None].expand_as(color), -1.0)
    return hint.to(device=device, dtype=dtype).contiguous()


def inpaint_blend_mask(mask: np.ndarray, sigma: int = 7) -> np.ndarray:
    """Where `inpaint_only` keeps the generated pixels (HxW float32 in 0..1): the mask grown by a
    `sigma`-pixel square and box-blurred by the same size (the extension's
    `control_net_inpaint_blur_sigma`); 0 keeps the control image."""
    soft = mask.astype(np.float32) / 255.0
    if sigma > 0:
        soft = cv2.dilate(soft, np.ones((sigma, sigma), dtype=np.uint8))
        soft = cv2.blur(soft, (sigma, sigma))
    return np.clip(soft, 0.0, 1.0)
