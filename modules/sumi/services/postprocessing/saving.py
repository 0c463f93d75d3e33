"""Writing Extras results as A1111 does: `outputs/extras-images/00012.png` (or the original name in
batches, opt `use_original_name_batch`), the image's own PNG info kept, the operations' infotext in
the `postprocessing` and `extras` text chunks (or EXIF for jpg/webp)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from PIL import Image

from modules.sumi.services.images.saving import (
    encode_image,
    next_sequence_number,
    sanitize_filename_part,
    sanitize_path_text,
)
from modules.sumi.util.atomic import write_atomic, write_unique


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
) -> Path:
    """Save one result and return its path. `forced_basename` (batch, original names) replaces the
    counter and overwrites, as A1111; `suffix` is the image's name tags (`-Lanczos`)."""
    directory.mkdir(parents=True, exist_ok=True)
    ext = extension.lower().lstrip(".") or "png"
    items = dict(existing_info) if pnginfo_enabled else {}
    if pnginfo_enabled and infotext:
        items["postprocessing"] = infotext
        items["extras"] = infotext
    text = infotext if pnginfo_enabled and ext != "png" and infotext else None
    data = encode_image(image, ext, text, existing_info=items)
    if forced_basename:
        name = sanitize_filename_part(forced_basename, replace_spaces=False) or "image"
        path = directory / f"{name}.{ext}"
        write_atomic(path, data)
        return path
    decoration = sanitize_path_text(suffix)
    if decoration and add_number:
        decoration = f"-{decoration}"
    if not add_number and decoration:
        return write_unique(directory, [f"{decoration.lstrip('-') or 'image'}.{ext}"], data, overwrite=True)
    start = next_sequence_number(directory)
    names = [f"{n:05}{decoration}.{ext}" for n in range(start, start + 500)]
    return write_unique(directory, names, data)
