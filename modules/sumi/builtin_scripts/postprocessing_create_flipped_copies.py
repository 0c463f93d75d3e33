"""Create flipped copies (A1111's built-in Extras script `scripts/postprocessing_create_flipped_copies.py`).

Adds mirrored copies of the picture as extra images: Horizontal (left-right), Vertical (upside down)
and Both (turned half a turn), each saved next to the original with a numbered suffix. Copies made here
go through the scripts that run after this one (a split, for instance). No infotext entries, as in A1111.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image

from modules import scripts_postprocessing, ui_components
from modules.sumi.engine.errors import InvalidRequestError

NAME = "Create flipped copies"
FLIPS = {
    "Horizontal": (Image.Transpose.FLIP_LEFT_RIGHT,),
    "Vertical": (Image.Transpose.FLIP_TOP_BOTTOM,),
    "Both": (Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.FLIP_LEFT_RIGHT),
}


class ScriptPostprocessingCreateFlippedCopies(scripts_postprocessing.ScriptPostprocessing):
    name = NAME
    order = 4000

    def ui(self) -> dict[str, Any]:
        with ui_components.InputAccordion(False, label=NAME) as enable, gr.Row():
            option = gr.CheckboxGroup(value=["Horizontal"], choices=list(FLIPS), show_label=False)
        return {"enable": enable, "option": option}

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        enable: bool = False,
        option: Any = ("Horizontal",),
    ) -> None:
        if not enable:
            return
        chosen = [option] if isinstance(option, str) else list(option or [])
        unknown = [o for o in chosen if o not in FLIPS]
        if unknown:
            raise InvalidRequestError(f"{NAME}: unknown option {unknown[0]!r}; use {', '.join(FLIPS)}")
        for name in FLIPS:  # A1111's order, whatever order they were ticked in
            if name in chosen:
                copy = pp.image
                for step in FLIPS[name]:
                    copy = copy.transpose(step)
                pp.extra_images.append(copy)
