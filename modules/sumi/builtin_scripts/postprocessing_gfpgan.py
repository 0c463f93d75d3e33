"""GFPGAN in the Extras tab (A1111's built-in postprocessing script): restore the faces of the picture
with GFPGAN and blend the result over the original by `GFPGAN visibility` (0 = off, 1 = only the
restored picture). Needs GFPGANv1.4.pth in models/GFPGAN and the face detector next to it; without
them the step fails with a message naming the file."""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules import scripts_postprocessing, shared
from modules.sumi.builtin_scripts.support.faces import restore_and_blend
from modules.sumi.services.faces.registry import GFPGAN


class ScriptPostprocessingGfpGan(scripts_postprocessing.ScriptPostprocessing):
    name = "GFPGAN"
    order = 2000

    def ui(self) -> dict[str, Any]:
        gfpgan_visibility = gr.Slider(
            minimum=0.0, maximum=1.0, step=0.001, label="GFPGAN visibility", value=0,
            elem_id="extras_gfpgan_visibility",
        )  # fmt: skip
        return {"gfpgan_visibility": gfpgan_visibility}

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        gfpgan_visibility: float = 0.0,
        enable: bool = True,
    ) -> None:
        """`enable` is A1111 1.7+'s accordion switch (off: nothing happens)."""
        visibility = float(gfpgan_visibility)
        if visibility == 0 or not enable:
            return
        restore_and_blend(shared.app().faces, pp, GFPGAN, visibility, 0.5)
        pp.info["GFPGAN visibility"] = round(visibility, 3)
