"""A1111's `modules.images`: saving, gridding and reading images, for extensions.

The work is in `modules.sumi.services.images` (`saving`: files and infotext, `grids`: grids and their
legends, `resize`: A1111's resize modes, `a1111_save`: `save_image` with A1111's signature); this
module re-exports it under A1111's names. `save_image` uses the running App's settings, folders and
callbacks.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from modules import shared
from modules.sumi.services.images import a1111_save
from modules.sumi.services.images import resize as _resize
from modules.sumi.services.images import saving as _saving
from modules.sumi.services.images.a1111_save import FilenameGenerator
from modules.sumi.services.images.grids import (
    Grid,
    GridAnnotation,
    GridStyle,
    combine_grid,
    draw_grid_annotations,
    draw_prompt_matrix,
    get_font,
    split_grid,
)
from modules.sumi.services.images.resize import flatten
from modules.sumi.services.images.saving import (
    IGNORED_INFO_KEYS,
    apply_filename_pattern,
    dated_dir,
    decode_exif_comment,
    encode_image,
    encode_image_base64,
    encode_png_base64,
    exif_with_comment,
    grid_rows,
    next_sequence_number,
    prompt_words,
    read_info_from_image,
    read_infotext_from_image,
    sanitize_filename_part,
    sanitize_path_text,
    save_image_file,
    write_atomic,
)
from modules.sumi.services.scripts.callbacks import grid_layout
from modules.sumi.util.b64images import decode_base64_image

__all__ = [
    "IGNORED_INFO_KEYS",
    "FilenameGenerator",
    "Grid",
    "GridAnnotation",
    "GridStyle",
    "apply_filename_pattern",
    "combine_grid",
    "dated_dir",
    "decode_base64_image",
    "decode_exif_comment",
    "draw_grid_annotations",
    "draw_prompt_matrix",
    "encode_image",
    "encode_image_base64",
    "encode_png_base64",
    "exif_with_comment",
    "flatten",
    "get_font",
    "get_next_sequence_number",
    "grid_rows",
    "image_grid",
    "next_sequence_number",
    "prompt_words",
    "read_info_from_image",
    "read_infotext_from_image",
    "resize_image",
    "sanitize_filename_part",
    "sanitize_path_text",
    "save_image",
    "save_image_file",
    "split_grid",
    "write_atomic",
]

get_next_sequence_number = next_sequence_number


def save_image(
    image: Image.Image, path: str, basename: str, *args: Any, **kwargs: Any
) -> tuple[str, str | None]:
    """A1111's `images.save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None,
    short_filename=False, no_prompt=False, grid=False, pnginfo_section_name="parameters", p=None,
    existing_info=None, forced_filename=None, suffix="", save_to_dirs=None)`, with the running App's
    settings: returns (file path, path of the .txt beside it or None)."""
    app = shared.app()
    return a1111_save.save_image(
        app.options, app.paths, app.callbacks, image, path, basename, *args, **kwargs
    )


def image_grid(imgs: Any, batch_size: int = 1, rows: int | None = None, **kwargs: Any) -> Image.Image:
    """A1111's `images.image_grid(imgs, batch_size=1, rows=None)`: without `rows`, the row count of the
    settings `n_rows` and `grid_prevent_empty_spots`."""
    app = shared.running_app()
    if rows is None and app is not None and not kwargs:
        kwargs = {
            "n_rows": int(app.options.n_rows),
            "prevent_empty_spots": bool(app.options.grid_prevent_empty_spots),
        }
    if app is not None and "layout" not in kwargs:  # A1111 runs the on_image_grid callbacks here
        kwargs["layout"] = grid_layout(app.callbacks)
    return _saving.image_grid(imgs, batch_size, rows, **kwargs)


def resize_image(
    resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None
) -> Image.Image:
    """A1111's `images.resize_image`: the picture grows with `upscaler_name` (default: the setting
    `upscaler_for_img2img`), through the App's upscaler registry; Lanczos when no App runs."""
    app = shared.running_app()
    if app is None:
        return _resize.resize_image(resize_mode, im, width, height)
    name = upscaler_name or app.options.upscaler_for_img2img
    return _resize.resize_image(resize_mode, im, width, height, resizer=app.upscalers.resizer(name))
