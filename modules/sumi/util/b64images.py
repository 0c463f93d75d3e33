"""Images as base64 text: what the HTTP API, `data:` URLs and the browser exchange.

Decoding accepts plain or URL-safe base64, with or without padding and line breaks, and `data:`
URLs; anything that is not a readable image is a ValueError whose message an API client can act on.
"""

from __future__ import annotations

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError


def data_url(data: bytes, mime: str) -> str:
    """`data:<mime>;base64,...` for the bytes of a file (e.g. a JPEG thumbnail for the page)."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


MAX_PIXELS = 64 * 1024 * 1024  # 64 megapixels (8192x8192): a decoded image never holds more


def decode_base64_image(data: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode base64 (optionally a `data:image/...;base64,` URL) into a loaded PIL image.

    The size in the image's header is checked against `max_pixels` before any pixel is decoded, so a
    small file that would unpack into gigabytes (a "decompression bomb") costs nothing. Raises
    ValueError with a message fit for an API client for anything that is not an image or too large.
    """
    if not isinstance(data, str) or not data.strip():
        raise ValueError("expected a base64-encoded image, got an empty value")
    text = data.strip()
    if text.startswith(("http://", "https://")):
        raise ValueError("image URLs are not accepted; send the image itself as base64")
    if text.startswith("data:"):
        if "," not in text:
            raise ValueError("malformed data: URL (no comma before the base64 data)")
        text = text.split(",", 1)[1]
    raw = _b64decode(text)
    try:
        image = Image.open(io.BytesIO(raw))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as e:
        raise ValueError(f"the base64 data is not a readable image ({e})") from e
    width, height = image.size
    if width * height > max_pixels:
        raise ValueError(
            f"the image is too large ({width}x{height}, {width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels"
        )
    try:
        image.load()
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as e:
        raise ValueError(f"the base64 data is not a readable image ({e})") from e
    return image


def _b64decode(text: str) -> bytes:
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.urlsafe_b64decode(compact)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64 image data ({e})") from e
