"""A1111's `modules.ui_toprow`: the prompt row of A1111's txt2img/img2img tabs. Extensions that rebuild
a whole generation tab from it (mov2mov) need A1111's tab internals, which Sumi's UI does not have:
making a `Toprow` raises a clear error, so the extension's tab is reported and left out."""

from __future__ import annotations

from modules.sumi.util.unsupported import not_supported


class Toprow:
    def __init__(
        self, is_img2img: bool = False, is_compact: bool = False, id_part: str | None = None
    ) -> None:
        not_supported(
            "ui_toprow.Toprow (A1111's prompt row)", "extensions cannot rebuild a generation tab from it"
        )
