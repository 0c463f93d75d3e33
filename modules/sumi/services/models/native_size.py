"""The image size a checkpoint was trained at, so the UI can start its size sliders there.

Read from the file's `modelspec.resolution` metadata ("1024x1024"), which Stability's files, kohya's and
Sumi's own trainers write; a file without it gets A1111's default of 512x512.
"""

from __future__ import annotations

import re
from pathlib import Path

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.files import read_safetensors_metadata

DEFAULT_SIZE = (512, 512)  # A1111's width and height
_RESOLUTION = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")


def native_size(path: str | Path | None) -> tuple[int, int]:
    """(width, height) the checkpoint at `path` was trained at; DEFAULT_SIZE when it does not say."""
    if path is None:
        return DEFAULT_SIZE
    try:
        metadata = read_safetensors_metadata(path)
    except (EngineError, OSError):
        return DEFAULT_SIZE
    found = _RESOLUTION.match(str(metadata.get("modelspec.resolution", "")))
    if found is None:
        return DEFAULT_SIZE
    width, height = int(found.group(1)), int(found.group(2))
    if not (64 <= width <= 8192 and 64 <= height <= 8192):
        return DEFAULT_SIZE
    return width, height
