"""Writing Extras results as A1111 does: `outputs/extras-images/00012.png` (or the original name in
batches, opt `use_original_name_batch`), the image's own PNG info kept, the operations' infotext in
the `postprocessing` and `extras` text chunks (or EXIF for jpg/webp)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from modules.sumi.services.images.saving import (
    SaveSettings,
    encode_image,
    fitting_extension,
    next_sequence_number,
    same_name_candidates,
    sanitize_filename_part,
    sanitize_path_text,
    save_jpg_copy,
    write_named,
)
from modules.sumi.util.atomic import write_unique


def save_extras_image(
    image: Image.Image,
    directory: Path,
    *,
    infotext: str,
    existing_info: Mapping[str, object],
    extension: str = "png",
    pnginfo_enabled: bool = True,
    forced_basename: str | None = None,
    suffix: str = "",
    add_number: bool = True,
    settings: SaveSettings | None = None,
) -> Path:
    """Save one result and return its path. `forced_basename` (batch, original names) replaces the
    counter (and a file of that name, unless opt `save_images_replace_action` says to number it), as
    A1111; `suffix` is the image's name tags (`-Lanczos`). `settings`: quality, lossless webp and the
    .jpg copy of a large image (`SaveSettings`)."""
    settings = settings or SaveSettings()
    directory.mkdir(parents=True, exist_ok=True)
    ext = fitting_extension(image, extension.lower().lstrip(".") or "png")
    items = dict(existing_info) if pnginfo_enabled else {}
    if pnginfo_enabled and infotext:
        items["postprocessing"] = infotext
        items["extras"] = infotext
    text = infotext if pnginfo_enabled and ext != "png" and infotext else None
    data = encode_image(image, ext, text, existing_info=items, **settings.encoding())
    path = _write(directory, ext, data, forced_basename, suffix, add_number, settings.replace)
    save_jpg_copy(image, path, len(data), infotext if pnginfo_enabled and infotext else None, settings)
    return path


def _write(
    directory: Path, ext: str, data: bytes, forced: str | None, suffix: str, add_number: bool, replace: bool
) -> Path:
    if forced:
        name = sanitize_filename_part(forced, replace_spaces=False) or "image"
        return write_named(directory, name, ext, data, replace)
    decoration = sanitize_path_text(suffix)
    if decoration and add_number:
        decoration = f"-{decoration}"
    if not add_number and decoration:
        names = same_name_candidates(decoration.lstrip("-") or "image", ext, replace)
        return write_unique(directory, names, data, overwrite=replace)
    start = next_sequence_number(directory)
    names = [f"{n:05}{decoration}.{ext}" for n in range(start, start + 500)]
    return write_unique(directory, names, data)
