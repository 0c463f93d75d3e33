"""A1111's `modules.ui_common` (and the helpers extensions import from `modules.ui`).

`create_refresh_button(component, refresh_method, refreshed_args, elem_id)` adds A1111's 🔄 button:
it calls `refresh_method()`, then updates the component(s) with `refreshed_args` (a dict, or a
function returning one, e.g. `lambda: {"choices": names()}`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from modules.sumi.frontends.gradio import output_panel
from modules.sumi.frontends.gradio.a1111_submit import plaintext_to_html
from modules.ui_components import FormRow, ToolButton

refresh_symbol = "\U0001f504"  # 🔄
folder_symbol = "\U0001f4c2"  # 📂
save_style_symbol = "\U0001f4be"  # 💾
apply_style_symbol = "\U0001f4cb"  # 📋
clear_prompt_symbol = "\U0001f5d1\ufe0f"  # 🗑️

__all__ = [
    "OutputPanel",
    "ToolButton",
    "create_output_panel",
    "create_override_settings_dropdown",
    "create_sampler_and_steps_selection",
    "detect_image_size_symbol",
    "ordered_ui_categories",
    "resize_from_to_html",
    "save_files",
    "switch_values_symbol",
    "update_generation_info",
    "apply_style_symbol",
    "clear_prompt_symbol",
    "create_refresh_button",
    "folder_symbol",
    "gr_show",
    "plaintext_to_html",
    "refresh_symbol",
    "save_style_symbol",
]


def create_refresh_button(
    refresh_component: Any,
    refresh_method: Callable[[], Any],
    refreshed_args: dict[str, Any] | Callable[[], dict[str, Any]],
    elem_id: str | None,
) -> ToolButton:
    components = refresh_component if isinstance(refresh_component, list) else [refresh_component]

    def refresh() -> Any:
        refresh_method()
        args = refreshed_args() if callable(refreshed_args) else refreshed_args
        for key, value in (args or {}).items():
            for component in components:
                setattr(component, key, value)  # new sessions start from the refreshed values too
        updates = [gr.update(**(args or {})) for _ in components]
        return updates if len(components) > 1 else updates[0]

    button = ToolButton(value=refresh_symbol, elem_id=elem_id)
    button.click(fn=refresh, inputs=[], outputs=components, show_progress="hidden")
    return button


def gr_show(visible: bool = True) -> dict[str, Any]:
    """A1111's `ui.gr_show`: an update that shows or hides a component."""
    return gr.update(visible=visible)


# -- A1111's output panel and its helpers (deforum, images-browser, agent-scheduler, cleaner) ---------

switch_values_symbol = "\U000021c5"  # ⇅
detect_image_size_symbol = "\U0001f4d0"  # 📐


@dataclass
class OutputPanel:
    gallery: Any = None
    generation_info: Any = None
    infotext: Any = None
    html_log: Any = None
    button_upscale: Any = None


def save_files(js_data: str, images: list[Any], do_make_zip: bool, index: int) -> tuple[Any, str]:
    """A1111's 💾 / 🗜️, the same as Sumi's own tabs (`frontends.gradio.output_panel`): the gallery's
    images (only image `index` with opt `save_selected_only`) into `outdir_save` with their infotexts
    and a `log.csv` row, and with `do_make_zip` also one zip (first in the list); (files update, note).
    `js_data` is the generation info JSON of the job that made them."""
    from modules import shared

    return output_panel.save_json_update(shared.app(), js_data, images, bool(do_make_zip), int(index))


def update_generation_info(generation_info: str, html_info: str, img_index: int) -> tuple[str, Any]:
    """The infotext of gallery image `img_index` from the panel's generation info JSON, as HTML."""
    try:
        infotexts = json.loads(generation_info)["infotexts"]
        if 0 <= img_index < len(infotexts):
            return plaintext_to_html(infotexts[img_index]), gr.update()
    except (ValueError, KeyError, TypeError):
        pass
    return html_info, gr.update()


def create_output_panel(tabname: str, outdir: str, toprow: Any = None) -> OutputPanel:
    """A1111's results column for an extension's tab, built like Sumi's own (`output_panel`):
    gallery, 📂 (opens `outdir`) 💾 🗜️, the hidden `generation_info` JSON textbox, infotext, log."""
    from modules import shared

    panel = output_panel.create_extension_panel(shared.app(), tabname, outdir)
    return OutputPanel(
        gallery=panel["gallery"],
        generation_info=panel["generation_info"],
        infotext=panel["infotext"],
        html_log=panel["html_log"],
    )


def create_sampler_and_steps_selection(choices: list[Any], tabname: str) -> tuple[Any, Any]:
    """A1111 (before 1.7): a sampler dropdown and a steps slider; returns (steps, sampler_name)."""
    names = [getattr(c, "name", c) for c in choices]
    with FormRow(elem_id=f"sampler_selection_{tabname}"):
        sampler_name = gr.Dropdown(
            label="Sampling method",
            elem_id=f"{tabname}_sampling",
            choices=names,
            value=names[0] if names else None,
        )
        steps = gr.Slider(
            minimum=1, maximum=150, step=1, elem_id=f"{tabname}_steps", label="Sampling steps", value=20
        )
    return steps, sampler_name


def create_override_settings_dropdown(tabname: str, row: Any = None) -> Any:
    """A1111's "Override settings" box, filled by pasting an infotext; hidden until it has values."""
    dropdown = gr.Dropdown(
        [],
        value=None,
        label="Override settings",
        visible=False,
        elem_id=f"{tabname}_override_settings",
        multiselect=True,
    )
    dropdown.change(lambda x: gr.update(visible=bool(x)), inputs=[dropdown], outputs=[dropdown])
    return dropdown


def ordered_ui_categories() -> list[str]:
    """A1111's order of the generation tabs' control groups (Sumi's tab has a fixed layout)."""
    return [
        "prompt",
        "image",
        "inpaint",
        "sampler",
        "accordions",
        "checkboxes",
        "dimensions",
        "cfg",
        "denoising",
        "seed",
        "batch",
        "override_settings",
        "scripts",
    ]


def resize_from_to_html(width: int, height: int, scale_by: float) -> str:
    """The "resize: from WxH to WxH" note of A1111's img2img "Resize by" slider."""
    target_width, target_height = int(width * scale_by), int(height * scale_by)
    if not target_width or not target_height:
        return "no image selected"
    return f"resize: from <span class='resolution'>{width}x{height}</span> to <span class='resolution'>{target_width}x{target_height}</span>"
