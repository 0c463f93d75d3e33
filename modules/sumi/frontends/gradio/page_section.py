"""A part of the page built in its own Blocks and then placed in the page, as A1111 builds its tabs."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.context import Context, set_render_context


class PageSection(gr.Blocks):
    """A Blocks made only to be `.render()`-ed into the page (outside any other Blocks).

    Leaving it does what placing it needs (its layout finished, its load events attached); what Gradio
    does for a Blocks it would serve itself (a queue and a web app when made, its config and another
    web app when left: about 0.2 s a section, six sections a page) is skipped."""

    def queue(self, *args: Any, **kwargs: Any) -> PageSection:
        return self  # never served: the page's queue runs its events

    def __exit__(self, exc_type: type[BaseException] | None = None, *args: Any) -> None:
        if exc_type is not None or self.parent is not None:
            return super().__exit__(exc_type, *args)
        self.fill_expected_parents()
        set_render_context(None)
        self.default_config.attach_load_events()
        Context.root_block = None
        self.exited = True
        return None
