"""Sumi's Gradio web UI: `build_ui(app)` returns the Blocks that `webui.py` mounts at "/".

The page's CSS and script travel inside the Blocks (in the `<head>` of the notices component), so
mounting needs no extra arguments; `CSS` and `JS` are exported for callers that prefer to pass them
to `gr.mount_gradio_app(..., css=CSS)` themselves.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import gradio as gr

from modules.ui.assets import CSS, JS
from modules.ui.quicksettings import create_quicksettings, page_load
from modules.ui.settings import create_settings_tab
from modules.ui.txt2img import create_txt2img_tab

if TYPE_CHECKING:
    from modules.app import App

__all__ = ["CSS", "JS", "build_ui"]


def build_ui(app: App) -> gr.Blocks:
    """The whole page: quick settings and notices on top, then one tab per mode."""
    with gr.Blocks(title="Sumi", analytics_enabled=False) as demo:
        quick = create_quicksettings(app)
        with gr.Tabs(elem_id="tabs"):
            _txt2img_tab(app)
            _settings_tab(app, demo)
        demo.load(
            partial(page_load, app),
            outputs=[quick.checkpoint, quick.notices],
            show_progress="hidden",
            api_visibility="undocumented",
        )
    return demo


def _txt2img_tab(app: App) -> None:
    with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
        create_txt2img_tab(app)


def _settings_tab(app: App, demo: gr.Blocks) -> None:
    with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
        create_settings_tab(app, demo)
