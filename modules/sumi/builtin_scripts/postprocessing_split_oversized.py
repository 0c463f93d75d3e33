"""Split oversized images (A1111's built-in Extras script `scripts/postprocessing_split_oversized.py`).

A picture much longer than the target size (the Upscale script's "Scale to" size, or the picture times
"Scale by") is scaled so its short side fits the target and cut into overlapping tiles of the target
size along its long side; the first tile replaces the picture, the others are extra images (saved as
`name-1.png`, `name-2.png`...). "Threshold" is how elongated a picture must be: it is split when its
proportions, compared with the target's, are at or below it (0.5: twice as long); "Overlap ratio" is
the least share of a tile that neighbouring tiles have in common. No infotext entries, as in A1111.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules import scripts_postprocessing, ui_components
from modules.sumi.builtin_scripts.support.targets import target_size
from modules.sumi.engine.imageprep.split import should_split, split_picture

NAME = "Split oversized images"


class ScriptPostprocessingSplitOversized(scripts_postprocessing.ScriptPostprocessing):
    name = NAME
    order = 4000

    def ui(self) -> dict[str, Any]:
        with ui_components.InputAccordion(False, label=NAME) as enable, gr.Row():
            split_threshold = gr.Slider(
                label="Threshold", value=0.5, minimum=0.0, maximum=1.0, step=0.05,
                elem_id="postprocess_split_threshold",
            )  # fmt: skip
            overlap_ratio = gr.Slider(
                label="Overlap ratio", value=0.2, minimum=0.0, maximum=0.9, step=0.05,
                elem_id="postprocess_overlap_ratio",
            )  # fmt: skip
        return {"enable": enable, "split_threshold": split_threshold, "overlap_ratio": overlap_ratio}

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        enable: bool = False,
        split_threshold: float = 0.5,
        overlap_ratio: float = 0.2,
    ) -> None:
        if not enable:
            return
        size = target_size(pp, NAME)
        if size is None or not should_split(pp.image, *size, float(split_threshold)):
            return
        first, *others = split_picture(pp.image, *size, float(overlap_ratio))
        pp.image = first
        pp.extra_images.extend(pp.create_copy(tile) for tile in others)
