"""A1111's `modules.ui_common` (and the helpers extensions import from `modules.ui`).

`create_refresh_button(component, refresh_method, refreshed_args, elem_id)` adds A1111's 🔄 button:
it calls `refresh_method()`, then updates the component(s) with `refreshed_args` (a dict, or a
function returning one, e.g. `lambda: {"choices": names()}`).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from modules.ui_components import ToolButton

refresh_symbol = "\U0001f504"  # 🔄
folder_symbol = "\U0001f4c2"  # 📂
save_style_symbol = "\U0001f4be"  # 💾
apply_style_symbol = "\U0001f4cb"  # 📋
clear_prompt_symbol = "\U0001f5d1\ufe0f"  # 🗑️

__all__ = [
    "ToolButton",
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


def plaintext_to_html(text: str, classname: str | None = None) -> str:
    content = "<br>\n".join(html.escape(x) for x in text.split("\n"))
    return f"<p class='{classname}'>{content}</p>" if classname else f"<p>{content}</p>"


def gr_show(visible: bool = True) -> dict[str, Any]:
    """A1111's `ui.gr_show`: an update that shows or hides a component."""
    return gr.update(visible=visible)
