"""A1111's prompt row (`modules.ui_toprow.Toprow`) for extensions that build a whole generation tab.

An extension such as mov2mov makes `Toprow(is_img2img, is_compact, id_part)` inside its own tab and reads
its components: `prompt`, `negative_prompt`, `submit`, `interrupt`, `skip`, `interrupting`, `paste`,
`clear_prompt_button`, `apply_styles`, `restore_progress_button`, `token_counter`/`token_button` (and the
negative ones), `prompt_img`, `button_interrogate`/`button_deepbooru` (img2img), `ui_styles.dropdown`,
`submit_box`. The element ids are A1111's with the row's `id_part` (`{id_part}_prompt`,
`{id_part}_neg_prompt`, `{id_part}_generate`, `{id_part}_interrupt`, `{id_part}_skip`,
`{id_part}_interrupting`, `{id_part}_styles`, `{id_part}_token_counter`, ...), except the buttons A1111
gives one page-wide id: ↙️ is `paste` only for txt2img and `{id_part}_paste` otherwise, 📎/📦 are
`interrogate`/`deepbooru` only for img2img (Sumi's own tabs hold those ids).

The pieces are Sumi's own: the prompt boxes and their token counters (`txt2img.prompt_boxes`, counted by
the server as in Sumi's tabs, for 20 steps), the styles row (`styles.create_styles_row`: Sumi's styles,
📋 is `apply_styles`), and Interrupt/Skip wired to the App's job state as Sumi's tabs wire theirs. As in
A1111, Interrupt, Skip and "Interrupting..." are hidden in the generate box until the page's submit
function shows them (`showSubmitButtons(id_part, false)`, ui.js), and the extension wires Generate,
↙️, 📎 and 📦 itself. With `is_compact` (setting "Compact prompt layout") only the generate box is made,
unrendered; `create_inline_toprow_prompts()` and `create_inline_toprow_image()` place the rest.
"""

from __future__ import annotations

import io
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from modules.sumi.frontends.gradio.gradio3_compat import gradio3_blocks
from modules.sumi.frontends.gradio.styles import StylesRow, create_styles_row
from modules.sumi.frontends.gradio.token_counter import wire_token_counters
from modules.sumi.frontends.gradio.txt2img import (
    interrupt,
    prompt_boxes,
    restore_progress_button,
    skip,
    tool_button,
)
from modules.sumi.services.images.saving import read_info_from_image

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)
QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}


def _make(cls: Any, *args: Any, **kwargs: Any) -> Any:
    return cls(*args, **kwargs)


def image_data(data: bytes | None) -> tuple[Any, None]:
    """A1111's `images.image_data`: a file dropped on the prompt fills it with the picture's infotext (or
    the text of a small text file); anything else leaves the prompt as it was. The file box is emptied."""
    if not data:
        return gr.skip(), None
    try:
        text, _ = read_info_from_image(Image.open(io.BytesIO(data)))
        if text:
            return text, None
    except Exception:  # not a picture: maybe text
        pass
    try:
        text = data.decode("utf8")
        if len(text) < 10000:
            return text, None
    except UnicodeDecodeError:
        pass
    return gr.skip(), None


class Toprow:
    """A1111's top row of a generation tab, made where it is constructed (inside a `gr.Blocks`)."""

    prompt: Any = None
    prompt_img: Any = None
    negative_prompt: Any = None
    button_interrogate: Any = None
    button_deepbooru: Any = None
    interrupt: Any = None
    interrupting: Any = None
    skip: Any = None
    submit: Any = None
    paste: Any = None
    clear_prompt_button: Any = None
    apply_styles: Any = None
    restore_progress_button: Any = None
    token_counter: Any = None
    token_button: Any = None
    negative_token_counter: Any = None
    negative_token_button: Any = None
    ui_styles: StylesRow | None = None
    submit_box: Any = None

    def __init__(
        self, app: App, is_img2img: bool = False, is_compact: bool = False, id_part: str | None = None
    ) -> None:
        self.app = app
        self.id_part = id_part or ("img2img" if is_img2img else "txt2img")
        self.is_img2img = bool(is_img2img)
        self.is_compact = bool(is_compact)
        with gradio3_blocks():  # the extension wires them the Gradio 3 way (`.click(_js=...)`)
            if not self.is_compact:
                with gr.Row(elem_id=f"{self.id_part}_toprow", equal_height=False):
                    self.create_classic_toprow()
            else:
                self.create_submit_box()

    # -- A1111's layout ------------------------------------------------------------------------------
    def create_classic_toprow(self) -> None:
        self.create_prompts()
        with gr.Column(scale=1, min_width=180, elem_id=f"{self.id_part}_actions_column"):
            self.create_submit_box()
            self.create_tools_row()
            self.create_styles_ui()

    def create_inline_toprow_prompts(self) -> None:
        """Compact layout: the prompts, tools and styles, where the extension calls this."""
        if not self.is_compact:
            return
        with gradio3_blocks():
            self.create_prompts()
            with gr.Row(elem_classes=["toprow-compact-stylerow"]):
                with gr.Column(elem_classes=["toprow-compact-tools"]):
                    self.create_tools_row()
                with gr.Column():
                    self.create_styles_ui()

    def create_inline_toprow_image(self) -> None:
        """Compact layout: the generate box, where the extension calls this (above its results)."""
        if not self.is_compact:
            return
        self.submit_box.render()

    def create_prompts(self) -> None:
        c: dict[str, Any] = {}
        compact = ["prompt-container-compact"] if self.is_compact else []
        with prompt_boxes(c, _make, self.id_part, compact):
            self.prompt_img = gr.File(
                label="",
                elem_id=f"{self.id_part}_prompt_image",
                file_count="single",
                type="binary",
                visible="hidden",
            )
        self.prompt, self.negative_prompt = c["prompt"], c["negative_prompt"]
        self.token_counter, self.negative_token_counter = c["token_counter"], c["negative_token_counter"]
        self.prompt_img.change(
            image_data, inputs=[self.prompt_img], outputs=[self.prompt, self.prompt_img], **QUICK
        )

    def create_submit_box(self) -> None:
        classes = ["generate-box"] + (["generate-box-compact"] if self.is_compact else [])
        with gr.Row(
            elem_id=f"{self.id_part}_generate_box", elem_classes=classes, render=not self.is_compact
        ) as box:
            self.submit_box = box
            # each covers half of Generate while shown (style.css); min_width=0 lets it be that narrow
            self.interrupt = gr.Button(
                "Interrupt",
                elem_id=f"{self.id_part}_interrupt",
                elem_classes=["generate-box-interrupt"],
                min_width=0,
            )
            self.skip = gr.Button(
                "Skip", elem_id=f"{self.id_part}_skip", elem_classes=["generate-box-skip"], min_width=0
            )
            self.interrupting = gr.Button(
                "Interrupting...",
                elem_id=f"{self.id_part}_interrupting",
                elem_classes=["generate-box-interrupting"],
                min_width=0,
            )
            self.submit = gr.Button("Generate", elem_id=f"{self.id_part}_generate", variant="primary")
        stop = partial(interrupt, self.app)
        self.skip.click(partial(skip, self.app), **QUICK)
        self.interrupt.click(
            stop, js=f'() => {{ showSubmitInterruptingPlaceholder("{self.id_part}"); }}', **QUICK
        )
        self.interrupting.click(stop, **QUICK)

    def create_tools_row(self) -> None:
        tab = self.id_part
        with gr.Row(elem_id=f"{tab}_tools", equal_height=True):
            self.paste = tool_button("↙️", "paste" if tab == "txt2img" else f"{tab}_paste")
            self.clear_prompt_button = tool_button("🗑️", f"{tab}_clear_prompt")
            if self.is_img2img:
                self.button_interrogate = tool_button(
                    "📎", "interrogate" if tab == "img2img" else f"{tab}_interrogate"
                )
                self.button_deepbooru = tool_button(
                    "📦", "deepbooru" if tab == "img2img" else f"{tab}_deepbooru"
                )
            self.restore_progress_button = restore_progress_button(tab)
            self.token_button = gr.Button(visible="hidden", elem_id=f"{tab}_token_button")
            self.negative_token_button = gr.Button(visible="hidden", elem_id=f"{tab}_negative_token_button")
        self.clear_prompt_button.click(
            None,
            js="confirm_clear_prompt",
            inputs=[self.prompt, self.negative_prompt],
            outputs=[self.prompt, self.negative_prompt],
            **QUICK,
        )
        wire_token_counters(
            self.app,
            self.prompt,
            self.negative_prompt,
            None,
            (self.token_counter, self.negative_token_counter),
            (self.token_button, self.negative_token_button),
        )

    def create_styles_ui(self) -> None:
        self.ui_styles = create_styles_row(self.app, self.prompt, self.negative_prompt, self.id_part)
        self.apply_styles = self.ui_styles.apply
