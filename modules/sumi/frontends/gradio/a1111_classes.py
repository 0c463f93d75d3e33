"""A1111's class names on every component and layout of the page.

A1111 gives each Gradio component and layout block the class `gradio-<block name>` (`gradio-button`,
`gradio-textbox`, `gradio-dropdown`, `gradio-row`, `gradio-tabs`, `gradio-tabitem`, ...), and a
multiselect dropdown also `multiselect`. Its style.css, the themes made for it and many extensions'
stylesheets and scripts select by them (`.gradio-button.tool`, `div.tabitem.gradio-tabitem`,
`.gradio-dropdown ul.options`), so Sumi's page carries them too, on Sumi's components and on the ones
extensions make. Gradio 6's block names are Gradio 3's for every component both have (`Tab` is
"tabitem" in both). The tab bar's own element, which no component owns, gets A1111's `tab-nav` in the
page (javascript/script.js)."""

from __future__ import annotations

from typing import Any

import gradio as gr


def a1111_classes(block: Any) -> list[str]:
    """The classes A1111 would give `block`, before its own."""
    extra = [f"gradio-{block.get_block_name()}"]
    if getattr(block, "multiselect", False):
        extra.append("multiselect")
    return extra


def add_a1111_classes(demo: gr.Blocks) -> None:
    """Give every block of `demo` that takes classes A1111's. Call once its `with` is left (Gradio adds
    its Forms then) and before the page's config is written (`mount_gradio_app`)."""
    for block in demo.blocks.values():
        if not hasattr(block, "elem_classes"):
            continue
        own = block.elem_classes
        own = [own] if isinstance(own, str) else list(own or [])
        block.elem_classes = [c for c in a1111_classes(block) if c not in own] + own
