"""Cover pictures stored inside a .safetensors file's metadata, shown on its extra-network card when no
preview picture lies beside it.

Two ways of embedding one are read: `ssmd_cover_images`, a JSON list of base64 pictures (what A1111's
Lora cards show, written by the safetensors metadata editors), and `modelspec.thumbnail`, a
`data:image/...;base64,` URL (Stability's model spec, which kohya's sd-scripts fill). The pictures come
from downloaded files, so each is decoded with limits: its base64 text, its pixel count, and the formats
a browser shows.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from pathlib import Path

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_safetensors_metadata
from modules.sumi.services.files.thumbnails import jpeg_thumbnail
from modules.sumi.util.cache import FileCache

COVER_LIST_KEY = "ssmd_cover_images"
THUMBNAIL_KEY = "modelspec.thumbnail"
MAX_COVER_BYTES = 32 * 1024 * 1024  # one decoded picture; a card shows 256 pixels of it
MAX_COVER_PIXELS = 64_000_000
SERVED_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}

_covers: FileCache[tuple[str, ...]] = FileCache(max_items=4096)


class CoverImageError(ValueError):
    """A cover picture that is not there or cannot be shown (the message says which)."""


def embedded_covers(path: str | Path) -> tuple[str, ...]:
    """The base64 texts of the cover pictures stored in the file at `path` (none for other formats, a
    file without covers, or one that cannot be read), in order: `ssmd_cover_images`, then the model
    spec's thumbnail. Read once per file version."""
    try:
        return _covers.get(path, lambda: covers_in(read_safetensors_metadata(path)))
    except (ModelLoadError, OSError):  # gone meanwhile, or not a readable .safetensors
        return ()


def covers_in(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The non-empty base64 pictures that `metadata` embeds (see the module's docstring)."""
    found: list[str] = []
    listed = metadata.get(COVER_LIST_KEY)
    if listed:
        try:
            values = json.loads(listed)
        except ValueError:
            values = []
        if isinstance(values, list):
            found += [v.strip() for v in values if isinstance(v, str) and v.strip()]
    thumbnail = metadata.get(THUMBNAIL_KEY, "")
    if isinstance(thumbnail, str) and thumbnail.startswith("data:image/") and "base64," in thumbnail:
        found.append(thumbnail.split("base64,", 1)[1].strip())
    return tuple(found)


def cover_picture(path: str | Path, index: int = 0, *, thumbnail: bool = False) -> tuple[bytes, str]:
    """Cover `index` of the file at `path` as (bytes, media type): the picture in its own format (PNG,
    JPEG, WebP or GIF; others as PNG), or a JPEG of at most THUMB_SIZE pixels with `thumbnail`.
    CoverImageError when there is no such cover or it is not a readable picture."""
    covers = embedded_covers(path)
    if index < 0 or index >= len(covers):
        raise CoverImageError(f"{Path(path).name} has no embedded cover picture {index}.")
    return _encoded(_decoded(covers[index], Path(path).name), thumbnail)


def _decoded(text: str, name: str) -> bytes:
    if len(text) > MAX_COVER_BYTES * 4 // 3 + 4:
        raise CoverImageError(f"The cover picture of {name} is over {MAX_COVER_BYTES // 2**20} MB.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CoverImageError(f"The cover picture of {name} is not base64 ({exc}).") from exc


def _encoded(data: bytes, thumbnail: bool) -> tuple[bytes, str]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_COVER_PIXELS:
                raise CoverImageError(f"The cover picture is {width}x{height}, too large to show.")
            if not thumbnail and image.format in SERVED_FORMATS:
                image.verify()  # the bytes are what the browser gets: checked, not re-encoded
                return data, SERVED_FORMATS[str(image.format)]
            if thumbnail:
                return jpeg_thumbnail(image), "image/jpeg"
            picture = image.convert("RGBA")  # a format the browser may not show: sent as PNG
    except CoverImageError:
        raise
    except Exception as exc:  # any decoder error: not a picture
        raise CoverImageError(f"The cover picture is not a readable picture ({exc}).") from exc
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"
