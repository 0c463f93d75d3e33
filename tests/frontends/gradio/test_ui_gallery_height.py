"""A1111's "Gallery height" setting sizes the results galleries of txt2img, img2img and Extras (a CSS
length; anything else is refused and the galleries fit their images)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from modules.sumi.frontends.gradio.txt2img import gallery_height


@pytest.mark.parametrize(
    ("value", "height"),
    [("768px", "768px"), (" 20em ", "20em"), ("75vh", "75vh"), ("", "auto"), (None, "auto"),
     ("1px; background: url(x)", "auto"), ("calc(100% - 1px)", "auto")],
)  # fmt: skip
def test_only_a_plain_css_length_is_taken(value, height):
    assert gallery_height(SimpleNamespace(gallery_height=value)) == height


def test_the_setting_sizes_every_results_gallery(make_app, tmp_path):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, start=False)
    app.options.data["gallery_height"] = "600px"
    demo = build_ui(app)
    heights = {b.elem_id: b.height for b in demo.blocks.values() if isinstance(b, gr.Gallery) and b.elem_id}
    assert heights["txt2img_gallery"] == heights["img2img_gallery"] == heights["extras_gallery"] == "600px"
