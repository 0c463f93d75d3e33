"""Grid legends (A1111's `GridAnnotation`, `draw_grid_annotations`, `draw_prompt_matrix`) and the tile
helpers of `modules.images` (`Grid`, `split_grid`, `combine_grid`).

A legend is text above each column and left of each row of a grid of equal cells: active lines in the
active colour, inactive ones grey and struck through (the Prompt matrix shows every part that way).
Colours and the font come from a `GridStyle` (A1111's options `grid_text_active_color`,
`grid_text_inactive_color`, `grid_background_color`, `font`); the font defaults to PIL's own, so nothing
is downloaded. `modules.images` re-exports these names for extensions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

RGB = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass
class GridAnnotation:
    """One line of a legend (A1111's constructor: `GridAnnotation(text="", is_active=True)`)."""

    text: str = ""
    is_active: bool = True
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class GridStyle:
    active: RGB = (0, 0, 0)
    inactive: RGB = (153, 153, 153)
    background: RGB = (255, 255, 255)
    font: str = ""  # a .ttf/.otf path; empty: PIL's default font

    @classmethod
    def from_options(cls, options: Any) -> GridStyle:
        """The style of A1111's grid options; missing or unreadable values keep the defaults."""
        default = cls()
        return cls(
            _color(getattr(options, "grid_text_active_color", None), default.active),
            _color(getattr(options, "grid_text_inactive_color", None), default.inactive),
            _color(getattr(options, "grid_background_color", None), default.background),
            str(getattr(options, "font", "") or ""),
        )


def _color(value: Any, default: RGB) -> RGB:
    try:
        return ImageColor.getcolor(str(value), "RGB") if value else default  # type: ignore[return-value]
    except ValueError:
        return default


@functools.lru_cache(maxsize=32)
def get_font(size: int, path: str = "") -> Font:
    """The font at `size` px: the file at `path` if it loads (a regular file: never a device or a
    pipe that would block), else PIL's built-in font."""
    size = max(1, int(size))
    if path and Path(path).is_file():
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def _wrap(text: str, font: Font, max_width: float) -> list[str]:
    """Words of `text` in lines no wider than `max_width` (a single long word gets its own line)."""
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if font.getlength(candidate) <= max_width or not lines[-1]:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _layout(items: Sequence[GridAnnotation], font: Font, max_width: float) -> list[GridAnnotation]:
    """The annotations wrapped to `max_width`, each line with its pixel size."""
    lines = []
    for item in items:
        for text in _wrap(item.text, font, max_width):
            left, top, right, bottom = font.getbbox(text) if text else (0, 0, 0, 0)
            lines.append(GridAnnotation(text, item.is_active, (int(right - left), int(bottom - top))))
    return lines


def _block_height(lines: Sequence[GridAnnotation], spacing: int) -> int:
    heights = [line.size[1] for line in lines if line.size]
    return sum(heights) + spacing * (len(heights) - 1) if any(heights) else 0


def _draw_lines(
    draw: ImageDraw.ImageDraw,
    center_x: float,
    top: float,
    lines: Sequence[GridAnnotation],
    font: Font,
    spacing: int,
    style: GridStyle,
) -> None:
    for line in lines:
        width, height = line.size or (0, 0)
        middle = top + height / 2
        color = style.active if line.is_active else style.inactive
        draw.text((center_x, middle), line.text, font=font, fill=color, anchor="mm")
        if not line.is_active and line.text:
            stroke = max(1, height // 6)
            draw.line((center_x - width / 2, middle, center_x + width / 2, middle), fill=color, width=stroke)
        top += height + spacing


def draw_grid_annotations(
    im: Image.Image,
    width: int,
    height: int,
    hor_texts: Sequence[Sequence[GridAnnotation]],
    ver_texts: Sequence[Sequence[GridAnnotation]],
    margin: int = 0,
    *,
    style: GridStyle | None = None,
) -> Image.Image:
    """`im` (a grid of `width` x `height` cells) with column headers above and row headers on the left,
    and `margin` pixels between cells. Needs one header list per column and per row."""
    style = style or GridStyle()
    cols, rows = im.width // width, im.height // height
    if cols != len(hor_texts) or rows != len(ver_texts):
        raise ValueError(
            f"a {cols}x{rows} grid needs {cols} column and {rows} row legends, "
            f"got {len(hor_texts)} and {len(ver_texts)}"
        )
    font_size = (width + height) // 25
    spacing = font_size // 2
    font = get_font(font_size, style.font)
    has_rows = any(item.text for items in ver_texts for item in items)
    pad_left = width * 3 // 4 if has_rows else 0
    hor = [_layout(items, font, width) for items in hor_texts]
    ver = [_layout(items, font, pad_left) for items in ver_texts]
    hor_heights = [_block_height(lines, spacing) for lines in hor]
    pad_top = max(hor_heights) + spacing * 2 if any(hor_heights) else 0

    size = (im.width + pad_left + margin * (cols - 1), im.height + pad_top + margin * (rows - 1))
    result = Image.new("RGB", size, style.background)
    for row in range(rows):
        for col in range(cols):
            cell = im.crop((width * col, height * row, width * (col + 1), height * (row + 1)))
            result.paste(cell, (pad_left + (width + margin) * col, pad_top + (height + margin) * row))

    draw = ImageDraw.Draw(result)
    for col, lines in enumerate(hor):
        center = pad_left + (width + margin) * col + width / 2
        _draw_lines(draw, center, pad_top / 2 - hor_heights[col] / 2, lines, font, spacing, style)
    for row, lines in enumerate(ver):
        top = pad_top + (height + margin) * row + height / 2 - _block_height(lines, spacing) / 2
        _draw_lines(draw, pad_left / 2, top, lines, font, spacing, style)
    return result


def draw_prompt_matrix(
    im: Image.Image,
    width: int,
    height: int,
    all_prompts: Sequence[str],
    margin: int = 0,
    *,
    style: GridStyle | None = None,
) -> Image.Image:
    """Prompt matrix legends: `all_prompts` are the `|` parts; the first half of the variable parts
    heads the columns, the rest the rows, each shown active where the cell uses it."""
    parts = list(all_prompts[1:])
    boundary = math.ceil(len(parts) / 2)
    horizontal, vertical = parts[:boundary], parts[boundary:]

    def headers(texts: Sequence[str]) -> list[list[GridAnnotation]]:
        return [
            [GridAnnotation(text, is_active=bool(pos & (1 << i))) for i, text in enumerate(texts)]
            for pos in range(1 << len(texts))
        ]

    return draw_grid_annotations(
        im, width, height, headers(horizontal), headers(vertical), margin, style=style
    )


# --- tiles (A1111's split_grid / combine_grid, used by upscaling scripts) --------------------------


class Grid(NamedTuple):
    tiles: list  # [[y, tile_h, [[x, tile_w, tile image], ...]], ...]
    tile_w: int
    tile_h: int
    image_w: int
    image_h: int
    overlap: int


def _tile_starts(total: int, tile: int, overlap: int) -> list[int]:
    count = max(1, math.ceil((total - overlap) / (tile - overlap)))
    step = (total - tile) / (count - 1) if count > 1 else 0
    return [min(int(i * step), max(total - tile, 0)) for i in range(count)]


def split_grid(image: Image.Image, tile_w: int = 512, tile_h: int = 512, overlap: int = 64) -> Grid:
    """Overlapping `tile_w` x `tile_h` tiles covering `image`, row by row."""
    if overlap >= min(tile_w, tile_h):
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile_w}x{tile_h}")
    grid = Grid([], tile_w, tile_h, image.width, image.height, overlap)
    for y in _tile_starts(image.height, tile_h, overlap):
        row = [
            [x, tile_w, image.crop((x, y, x + tile_w, y + tile_h))]
            for x in _tile_starts(image.width, tile_w, overlap)
        ]
        grid.tiles.append([y, tile_h, row])
    return grid


def _ramp(length: int, across: int, vertical: bool) -> Image.Image:
    ramp = (np.arange(length, dtype=np.float32) * 255 / max(length, 1)).astype(np.uint8)
    mask = np.repeat(ramp[:, None], across, axis=1) if vertical else np.repeat(ramp[None, :], across, axis=0)
    return Image.fromarray(mask, "L")


def combine_grid(grid: Grid) -> Image.Image:
    """Put `split_grid` tiles back together, blending each overlap with a linear ramp."""
    overlap = grid.overlap
    combined = Image.new("RGB", (grid.image_w, grid.image_h))
    for y, h, row in grid.tiles:
        line = Image.new("RGB", (grid.image_w, h))
        for x, w, tile in row:
            if x == 0 or overlap == 0:
                line.paste(tile, (x, 0))
                continue
            line.paste(tile.crop((0, 0, overlap, h)), (x, 0), mask=_ramp(overlap, h, vertical=False))
            line.paste(tile.crop((overlap, 0, w, h)), (x + overlap, 0))
        if y == 0 or overlap == 0:
            combined.paste(line, (0, y))
            continue
        top = line.crop((0, 0, line.width, overlap))
        combined.paste(top, (0, y), mask=_ramp(overlap, line.width, vertical=True))
        combined.paste(line.crop((0, overlap, line.width, h)), (0, y + overlap))
    return combined


__all__ = [
    "Grid",
    "GridAnnotation",
    "GridStyle",
    "combine_grid",
    "draw_grid_annotations",
    "draw_prompt_matrix",
    "get_font",
    "split_grid",
]
