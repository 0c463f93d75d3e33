"""The styles row of a generation tab: A1111's styles dropdown, 🔄 refresh, 📋 apply, and 💾 save-as-style.

The selected styles go to the job with Generate (`p.styles`), which merges them into the prompts.
📋 merges them into the prompt boxes now and clears the selection, as A1111's button does. 💾 saves
the prompt boxes as a style under the name typed beside it (a style of that name is replaced).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.settings.styles import StyleDatabase


@dataclass
class StylesRow:
    dropdown: gr.Dropdown
    refresh: gr.Button
    apply: gr.Button
    name: gr.Textbox
    create: gr.Button
    status: gr.HTML


def note_html(message: str) -> str:
    return f'<div class="sumi-note">{html.escape(message)}</div>'


def _selection(styles: StyleDatabase, selected: list[str] | None) -> list[str]:
    """The selected names that still exist (a refreshed file may have dropped some)."""
    return [name for name in selected or [] if name in styles.styles]


def _dropdown(styles: StyleDatabase, selected: list[str] | None) -> dict[str, Any]:
    return gr.update(choices=styles.names(), value=_selection(styles, selected))


# -- handlers ------------------------------------------------------------------------------------------
def refresh_styles(styles: StyleDatabase, selected: list[str] | None) -> tuple[dict[str, Any], str]:
    """🔄: read the styles files again."""
    warnings = styles.reload()
    return _dropdown(styles, selected), "".join(results.error_html(w) for w in warnings)


def apply_styles(
    styles: StyleDatabase, prompt: str, negative_prompt: str, selected: list[str] | None
) -> tuple[str, str, list[str]]:
    """📋: write the selected styles into the prompt boxes and clear the selection."""
    chosen = list(selected or [])
    return (
        styles.apply_styles_to_prompt(prompt or "", chosen),
        styles.apply_negative_styles_to_prompt(negative_prompt or "", chosen),
        [],
    )


def save_style(
    styles: StyleDatabase, name: str, prompt: str, negative_prompt: str, selected: list[str] | None
) -> tuple[dict[str, Any], Any, str]:
    """💾: save the prompt boxes as a style; the name box is cleared when it worked."""
    name = (name or "").strip()
    if not name:
        return gr.skip(), gr.skip(), results.error_html("Type a name for the new style first.")
    existed = name in styles.styles
    try:
        style = styles.save_style(name, prompt or "", negative_prompt or "")
    except (OSError, ValueError) as exc:
        return gr.skip(), gr.skip(), results.error_html(str(exc))
    verb = "Replaced" if existed else "Saved"
    return _dropdown(styles, selected), "", note_html(f"{verb} style {name!r} in {style.path}")


# -- layout --------------------------------------------------------------------------------------------
def _tool_button(text: str, elem_id: str) -> gr.Button:
    """A1111's small square buttons next to a field (as `txt2img.tool_button`)."""
    return gr.Button(text, elem_id=elem_id, elem_classes=["tool"], size="sm", min_width=40, scale=0)


def create_styles_row(
    app: App, prompt: gr.Textbox, negative_prompt: gr.Textbox, tabname: str = "txt2img"
) -> StylesRow:
    """Lay out the styles controls (A1111's element ids) and wire them to the prompt boxes."""
    styles = app.styles
    with gr.Column(elem_id=f"{tabname}_styles_row", min_width=0):
        dropdown = gr.Dropdown(
            choices=styles.names(),
            value=[],
            multiselect=True,
            label="Styles",
            elem_id=f"{tabname}_styles",
            min_width=0,
        )
        with gr.Row(elem_id=f"{tabname}_style_tools", equal_height=True):
            apply = _tool_button("📋", f"{tabname}_style_apply")
            refresh = _tool_button("🔄", f"refresh_{tabname}_styles")
        with gr.Row(elem_id=f"{tabname}_style_create_row", equal_height=True):
            name = gr.Textbox(
                show_label=False,
                label="New style name",
                placeholder="New style name",
                container=False,
                elem_id=f"{tabname}_style_name",
                lines=1,
                max_lines=1,
                scale=1,
                min_width=60,
            )
            create = _tool_button("💾", f"{tabname}_style_create")
        status = gr.HTML("", elem_id=f"{tabname}_styles_status", js_on_load=None)
    row = StylesRow(dropdown, refresh, apply, name, create, status)
    _wire(styles, row, prompt, negative_prompt)
    return row


def _wire(styles: StyleDatabase, row: StylesRow, prompt: gr.Textbox, negative_prompt: gr.Textbox) -> None:
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    row.refresh.click(
        partial(refresh_styles, styles),
        inputs=row.dropdown,
        outputs=[row.dropdown, row.status],
        trigger_mode="always_last",
        **quick,
    )
    row.apply.click(
        partial(apply_styles, styles),
        inputs=[prompt, negative_prompt, row.dropdown],
        outputs=[prompt, negative_prompt, row.dropdown],
        **quick,
    )
    save = {
        "fn": partial(save_style, styles),
        "inputs": [row.name, prompt, negative_prompt, row.dropdown],
        "outputs": [row.dropdown, row.name, row.status],
        **quick,
    }
    row.create.click(**save)
    row.name.submit(**save)
