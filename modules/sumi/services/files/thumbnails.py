"""Small JPEG thumbnails of the preview pictures of extra-network cards, made once per file version.

Civitai-style previews are often full-size pictures of a few MB; a card shows 256 pixels of one. The
page loads each card's thumbnail from `/sd_extra_networks/thumb` when the card scrolls into view, so a
library of thousands of previews costs what is on the screen.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from modules.sumi.util.cache import FileCache

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

THUMB_SIZE = 256
_thumbnails: FileCache[bytes] = FileCache(max_items=4096)  # 5-20 KB each
# A page asks for a screenful of thumbnails at once and the server answers on many threads: a few
# decodes at a time keep the memory of big pictures (a 6000x8000 preview decodes to 144 MB) bounded.
_decoding = threading.BoundedSemaphore(max(2, min(4, os.cpu_count() or 2)))


def thumbnail_jpeg(image_path: str | Path) -> bytes:
    """The picture shrunk to fit THUMB_SIZE pixels, as JPEG bytes; b"" when it cannot be read."""
    path = Path(image_path)
    try:
        return _thumbnails.get(path, lambda: _make(path))
    except OSError:  # gone meanwhile
        return b""


def clear_thumbnails() -> None:
    _thumbnails.clear()


def _make(path: Path) -> bytes:
    with _decoding:
        return _shrunk(path)


def _shrunk(path: Path) -> bytes:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return jpeg_thumbnail(image)
    except Exception as exc:  # a broken picture: no preview, never a broken panel
        log.warning("preview %s not shown: %s", path, exc)
        return b""


def jpeg_thumbnail(image: Image.Image) -> bytes:
    """An opened picture shrunk to fit THUMB_SIZE pixels, as JPEG bytes (decoder errors propagate)."""
    image.draft("RGB", (THUMB_SIZE, THUMB_SIZE))  # JPEG: decode at a fraction of its size
    picture = image.convert("RGB")
    picture.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
