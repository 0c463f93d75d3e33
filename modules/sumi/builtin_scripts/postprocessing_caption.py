"""Caption (A1111's built-in Extras script `scripts/postprocessing_caption.py`).

Writes a caption for each picture: DeepDanbooru's tags and/or the BLIP caption, joined with ", " after
any caption an earlier script gave it. The caption is saved as a `.txt` file next to the saved picture
(the setting "Action for existing captions" says what happens to one already there), which is what
training reads. The models are the user's files (models/torch_deepdanbooru, models/BLIP/<folder>);
a missing one fails the step with a message naming where it goes. No infotext entries, as in A1111.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules import scripts_postprocessing, shared, ui_components
from modules.sumi.engine.errors import InvalidRequestError

NAME = "Caption"
DEEPBOORU, BLIP = "Deepbooru", "BLIP"


class ScriptPostprocessingCeption(scripts_postprocessing.ScriptPostprocessing):
    name = NAME
    order = 4000

    def ui(self) -> dict[str, Any]:
        with ui_components.InputAccordion(False, label=NAME) as enable:
            option = gr.CheckboxGroup(value=[DEEPBOORU], choices=[DEEPBOORU, BLIP], show_label=False)
        return {"enable": enable, "option": option}

    def process(
        self, pp: scripts_postprocessing.PostprocessedImage, enable: bool = False, option: Any = (DEEPBOORU,)
    ) -> None:
        if not enable:
            return
        chosen = [option] if isinstance(option, str) else list(option or [])
        unknown = [o for o in chosen if o not in (DEEPBOORU, BLIP)]
        if unknown:
            raise InvalidRequestError(f"{NAME}: unknown option {unknown[0]!r}; use {DEEPBOORU} or {BLIP}")
        captioning = shared.app().captioning
        captions = [pp.caption]
        if DEEPBOORU in chosen:
            captions.append(captioning.tag(pp.image))
        if BLIP in chosen:
            captions.append(captioning.caption(pp.image))
        pp.caption = ", ".join(c for c in captions if c)
