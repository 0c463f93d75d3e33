"""The txt2img / img2img body as A1111 1.6+ lays it out: under the prompt, one Tabs
(`{tabname}_extra_tabs`, class `extra-networks`) whose first tab, "Generation", holds the settings
column and the results side by side (a `resize-handle-row`), followed by the extra networks' card tabs.

Extensions and themes look these up by A1111's ids and classes: `#txt2img_extra_tabs .tab-nav button`
for the tab names, `#txt2img_extra_tabs > .tabitem` for the pages, `.resize-handle-row` for the
settings/results row."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gradio as gr


@contextlib.contextmanager
def generation_tabs(tabname: str) -> Iterator[gr.Tabs]:
    """The Tabs; every tab's name in its row, wrapping as Gradio 3's did (Gradio 6's default hides those
    that do not fit in a "..." menu: in a narrow column, or a theme's sidebar, only "Generation" showed)."""
    with gr.Tabs(
        elem_id=f"{tabname}_extra_tabs", elem_classes=["extra-networks"], overflow_behavior="wrap"
    ) as tabs:
        yield tabs


@contextlib.contextmanager
def generation_tab(tabname: str) -> Iterator[gr.Row]:
    """The "Generation" tab's row: put the settings column and the results column in it."""
    with (
        gr.Tab("Generation", id=f"{tabname}_generation", elem_id=f"{tabname}_generation_tab"),
        gr.Row(equal_height=False, elem_classes=["resize-handle-row"]) as row,
    ):
        yield row
