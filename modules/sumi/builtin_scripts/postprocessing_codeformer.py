"""CodeFormer in the Extras tab (A1111's built-in postprocessing script): restore the faces with
CodeFormer at `CodeFormer weight` (0 = maximum effect, 1 = minimum) and blend the result over the
original by `CodeFormer visibility`. Needs codeformer-v0.1.0.pth in models/Codeformer and the face
detector in models/GFPGAN; without them the step fails with a message naming the file."""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules import scripts_postprocessing, shared
from modules.sumi.builtin_scripts.support.faces import restore_and_blend
from modules.sumi.services.faces.registry import CODEFORMER


class ScriptPostprocessingCodeFormer(scripts_postprocessing.ScriptPostprocessing):
    name = "CodeFormer"
    order = 3000

    def ui(self) -> dict[str, Any]:
        with gr.Row():
            codeformer_visibility = gr.Slider(
                minimum=0.0, maximum=1.0, step=0.001, label="CodeFormer visibility", value=0,
                elem_id="extras_codeformer_visibility",
            )  # fmt: skip
            codeformer_weight = gr.Slider(
                minimum=0.0, maximum=1.0, step=0.001, value=0,
                label="CodeFormer weight (0 = maximum effect, 1 = minimum effect)", elem_id="extras_codeformer_weight",
            )  # fmt: skip
        return {"codeformer_visibility": codeformer_visibility, "codeformer_weight": codeformer_weight}

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        codeformer_visibility: float = 0.0,
        codeformer_weight: float = 0.0,
        enable: bool = True,
    ) -> None:
        """`enable` is A1111 1.7+'s accordion switch (off: nothing happens)."""
        visibility, weight = float(codeformer_visibility), float(codeformer_weight)
        if visibility == 0 or not enable:
            return
        restore_and_blend(shared.app().faces, pp, CODEFORMER, visibility, weight)
        pp.info["CodeFormer visibility"] = round(visibility, 3)
        pp.info["CodeFormer weight"] = round(weight, 3)
