"""The PNG Info tab (A1111's): drop a PNG, JPEG or WebP and see its generation parameters (A1111's
infotext, or other generators' metadata converted, e.g. NovelAI's) and every other text chunk; the
"Send to" buttons carry the image and its parameters to txt2img, img2img, inpaint or Extras through the
page's paste-button registry (A1111's `ParamBinding`)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from modules.sumi.frontends.gradio.paste_buttons import REGISTRY, ParamBinding
from modules.sumi.services.images.pnginfo import run_pnginfo

TARGETS = (("txt2img", "txt2img"), ("img2img", "img2img"), ("inpaint", "inpaint"), ("extras", "extras"))


def create_pnginfo_tab() -> dict[str, Any]:
    """Lay out the tab (inside a `gr.Tab`), wire it and register its Send-to buttons."""
    c: dict[str, Any] = {}
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            c["image"] = gr.Image(
                label="Source",
                type="pil",
                sources=["upload", "clipboard"],
                elem_id="pnginfo_image",
                height=420,
            )
        with gr.Column(variant="panel"):
            c["html"] = gr.HTML(elem_id="pnginfo_html", js_on_load=None)
            c["generation_info"] = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
            c["html2"] = gr.HTML(elem_id="pnginfo_html2", js_on_load=None)
            with gr.Row():
                for tabname, label in TARGETS:
                    c[f"send_{tabname}"] = gr.Button(f"Send to {label}", elem_id=f"{tabname}_tab", size="sm")
    for tabname, _ in TARGETS:
        REGISTRY.register(
            ParamBinding(
                paste_button=c[f"send_{tabname}"],
                tabname=tabname,
                source_text_component=c["generation_info"],
                source_image_component=c["image"],
            )
        )
    c["image"].change(
        run_pnginfo,
        inputs=c["image"],
        outputs=[c["html"], c["generation_info"], c["html2"]],
        concurrency_limit=None,
        show_progress="hidden",
        api_visibility="undocumented",
    )
    return c
