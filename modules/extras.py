"""A1111's `modules.extras`: only `run_pnginfo` (the PNG Info tab's reader) is provided."""

from __future__ import annotations

import html
from typing import Any


def run_pnginfo(image: Any) -> tuple[str, str | None, str]:
    """("", infotext, HTML of every text chunk) of an image, as A1111's PNG Info tab shows it."""
    if image is None:
        return "", "", ""
    from modules.sumi.services.images.saving import read_info_from_image

    geninfo, items = read_info_from_image(image)
    items = {**(items or {}), **({"parameters": geninfo} if geninfo else {})}
    info = "".join(
        f"<div><p><b>{html.escape(str(k))}</b></p><p>{html.escape(str(v))}</p></div>\n"
        for k, v in items.items()
    )
    if not info:
        info = "<div><p>Nothing found in the image.</p></div>"
    return "", geninfo, info
