"""img2img's 📎 Interrogate CLIP and 📦 Interrogate DeepBooru buttons (A1111's `process_interrogate`):
the picture of the selected sub-tab is captioned into the prompt; on the Batch sub-tab every picture of
the input directory gets its caption appended to `<name>.txt` in the output directory (or beside it).
A missing model or picture is shown in the tab's message area, naming what to put where."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from modules.sumi.engine.errors import EngineError, InvalidRequestError
from modules.sumi.frontends.gradio.results import error_html
from modules.sumi.services.captioning.service import CLIP, DEEPDANBOORU

if TYPE_CHECKING:
    from modules.sumi.app import App

# the img2img controls the buttons read, in order: the sub-tab, its pictures, the batch folders
INPUTS = (
    "mode",
    "init_img",
    "sketch",
    "init_img_with_mask",
    "inpaint_color_sketch",
    "init_img_inpaint",
    "batch_input_dir",
    "batch_output_dir",
)
BATCH = 5


PictureOf = Callable[[int, Sequence[Any]], Image.Image | None]  # (sub-tab, its pictures) -> the picture


def wire_interrogate(
    app: App, controls: dict[str, Any], buttons: dict[str, gr.Button], note: Any, picture_of: PictureOf
) -> None:
    """`picture_of(mode, pictures)` picks the picture of a sub-tab from the sub-tabs' values."""
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    for button, model in ((buttons["interrogate"], CLIP), (buttons["deepbooru"], DEEPDANBOORU)):
        button.click(
            partial(interrogate, app, model, picture_of),
            inputs=[controls[name] for name in INPUTS],
            outputs=[controls["prompt"], note],
            **quick,
        )


def interrogate(app: App, model: str, picture_of: PictureOf, mode: Any, *values: Any) -> tuple[Any, str]:
    """(the new prompt or no change, the message)."""
    try:
        if int(mode or 0) == BATCH:
            return gr.update(), _caption_folder(app, model, *values[-2:])
        picture = picture_of(int(mode or 0), values[:-2])
        if picture is None:
            raise InvalidRequestError("Interrogate: put a picture in the img2img tab first")
        return app.captioning.interrogate(picture, model), ""
    except EngineError as exc:
        return gr.update(), error_html(str(exc))


def _caption_folder(app: App, model: str, input_dir: str, output_dir: str) -> str:
    if getattr(app.args, "hide_ui_dir_config", False):
        raise InvalidRequestError("Batch interrogation is turned off (--hide-ui-dir-config)")
    if not (input_dir or "").strip():
        raise InvalidRequestError("Interrogate: set the batch input directory first")
    try:
        source = app.paths.confine(input_dir.strip())
        target = app.paths.confine(output_dir.strip()) if (output_dir or "").strip() else None
    except ValueError as exc:
        raise InvalidRequestError(f"Interrogate: {exc}") from exc
    written = app.captioning.interrogate_folder(source, target, model)
    where = html.escape(str(target or source))
    return f'<div class="sumi-note">Captioned {len(written)} pictures into {where}</div>'
