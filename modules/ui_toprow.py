"""A1111's `modules.ui_toprow`: the prompt row of a generation tab, for extensions that build their own
tab from it (mov2mov). `Toprow(is_img2img, is_compact=False, id_part=None)` lays it out where it is made;
see `modules.sumi.frontends.gradio.toprow` for its components and element ids."""

from __future__ import annotations

from modules import shared
from modules.sumi.frontends.gradio import toprow


class Toprow(toprow.Toprow):
    __doc__ = toprow.Toprow.__doc__

    def __init__(
        self, is_img2img: bool = False, is_compact: bool = False, id_part: str | None = None
    ) -> None:
        super().__init__(shared.app(), is_img2img, is_compact, id_part)


__all__ = ["Toprow"]
