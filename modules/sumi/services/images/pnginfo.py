"""What the PNG Info tab shows of an image (A1111's `modules.extras.run_pnginfo`): its generation
parameters (A1111's infotext from PNG text or EXIF, or another generator's metadata converted) and
every other text item, as HTML."""

from __future__ import annotations

import html
from typing import Any

from modules.sumi.services.images.saving import read_info_from_image


def run_pnginfo(image: Any) -> tuple[str, str, str]:
    """("", the parameters, HTML of every item) of an image; empty strings for no image."""
    if image is None:
        return "", "", ""
    geninfo, items = read_info_from_image(image)
    shown = {str(k): v for k, v in (items or {}).items() if isinstance(v, (str, int, float))}
    if geninfo:
        shown["parameters"] = geninfo
    info = "".join(
        f"<div><p><b>{html.escape(k)}</b></p><p>{_lines(str(v))}</p></div>\n" for k, v in shown.items()
    )
    return "", geninfo or "", info or "<div><p>Nothing found in the image.</p></div>"


def _lines(text: str) -> str:
    return "<br>".join(html.escape(line) for line in text.split("\n"))
