"""Auto-sized crop (A1111's built-in Extras script `scripts/processing_autosized_crop.py`).

Each picture is centre-cropped to a width and height chosen for it: both between "Dimension lower
bound" and "Dimension upper bound" in steps of 64 from the lower bound, the area between the area
bounds, the proportions within "Error threshold" of the picture's; "Maximize area" takes the largest
such size, "Minimize error" the closest in proportions. A picture no size fits is left as it is (and
the log says so). No infotext entries, as in A1111.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from modules import scripts_postprocessing, ui_components
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.imageprep.autosize import OBJECTIVES, center_crop, choose_size

NAME = "Auto-sized crop"
log = logging.getLogger(__name__)


class ScriptPostprocessingAutosizedCrop(scripts_postprocessing.ScriptPostprocessing):
    name = NAME
    order = 4000

    def ui(self) -> dict[str, Any]:
        with ui_components.InputAccordion(False, label=NAME) as enable:
            gr.Markdown("Each image is center-cropped with an automatically chosen width and height.")
            with gr.Row():
                mindim = gr.Slider(
                    minimum=64, maximum=2048, step=8, label="Dimension lower bound", value=384,
                    elem_id="postprocess_multicrop_mindim",
                )  # fmt: skip
                maxdim = gr.Slider(
                    minimum=64, maximum=2048, step=8, label="Dimension upper bound", value=768,
                    elem_id="postprocess_multicrop_maxdim",
                )  # fmt: skip
            with gr.Row():
                minarea = gr.Slider(
                    minimum=64 * 64, maximum=2048 * 2048, step=1, label="Area lower bound", value=64 * 64,
                    elem_id="postprocess_multicrop_minarea",
                )  # fmt: skip
                maxarea = gr.Slider(
                    minimum=64 * 64, maximum=2048 * 2048, step=1, label="Area upper bound", value=640 * 640,
                    elem_id="postprocess_multicrop_maxarea",
                )  # fmt: skip
            with gr.Row():
                objective = gr.Radio(
                    list(OBJECTIVES), value=OBJECTIVES[0], label="Resizing objective",
                    elem_id="postprocess_multicrop_objective",
                )  # fmt: skip
                threshold = gr.Slider(
                    minimum=0, maximum=1, step=0.01, label="Error threshold", value=0.1,
                    elem_id="postprocess_multicrop_threshold",
                )  # fmt: skip
        return {
            "enable": enable,
            "mindim": mindim,
            "maxdim": maxdim,
            "minarea": minarea,
            "maxarea": maxarea,
            "objective": objective,
            "threshold": threshold,
        }

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        enable: bool = False,
        mindim: int = 384,
        maxdim: int = 768,
        minarea: int = 64 * 64,
        maxarea: int = 640 * 640,
        objective: str = OBJECTIVES[0],
        threshold: float = 0.1,
    ) -> None:
        if not enable:
            return
        _check_bounds(int(mindim), int(maxdim), int(minarea), int(maxarea), str(objective))
        size = choose_size(
            pp.image.width,
            pp.image.height,
            min_dim=int(mindim),
            max_dim=int(maxdim),
            min_area=int(minarea),
            max_area=int(maxarea),
            objective=str(objective),
            threshold=float(threshold),
        )
        if size is None:
            log.warning(
                "%s: skipped a %dx%d image (no size within the bounds and the error threshold)",
                NAME, pp.image.width, pp.image.height,
            )  # fmt: skip
            return
        pp.image = center_crop(pp.image, *size)


def _check_bounds(mindim: int, maxdim: int, minarea: int, maxarea: int, objective: str) -> None:
    if objective not in OBJECTIVES:
        raise InvalidRequestError(
            f"{NAME}: unknown resizing objective {objective!r}; use {' or '.join(OBJECTIVES)}"
        )
    if not 64 <= mindim <= maxdim <= 8192:
        raise InvalidRequestError(
            f"{NAME}: the dimension bounds must satisfy 64 <= lower ({mindim}) <= upper ({maxdim}) <= 8192"
        )
    if not 0 < minarea <= maxarea:
        raise InvalidRequestError(
            f"{NAME}: the area bounds must satisfy 0 < lower ({minarea}) <= upper ({maxarea})"
        )
