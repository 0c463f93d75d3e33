"""A slider's value that a page script left as null reaches the job as the slider's own value."""

from __future__ import annotations

import asyncio

import gradio as gr

from modules.sumi.frontends.gradio import sliders_never_null, textboxes_never_null
from modules.sumi.frontends.gradio.gradio3_compat import compat_gradio


def test_a_null_slider_value_reads_as_the_sliders_value_and_a_number_passes_unchanged():
    with gr.Blocks() as demo:
        width = gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id="txt2img_width")
        with gr.Blocks() as extension_tab:  # an extension's tab, rendered into the page as A1111's are
            extra = gr.Slider(0, 1, value=0.25, label="Weight")
        extension_tab.render()
    sliders_never_null(demo)
    sliders_never_null(demo)  # twice: still one fallback

    assert width.preprocess(None) == 512
    assert width.preprocess(768) == 768
    assert extra.preprocess(None) == 0.25


def test_a_null_slider_value_runs_the_event_with_the_sliders_value():
    with gr.Blocks() as demo:
        width = gr.Slider(64, 2048, value=512, step=8)
        out = gr.Number()
        width.change(lambda w: w * 2, inputs=[width], outputs=[out])
    sliders_never_null(demo)
    fn = demo.fns[0]

    assert asyncio.run(demo.preprocess_data(fn, [None], state=None)) == [512]


def test_a_text_value_reaches_the_function_as_it_is():
    """Gradio 3 handed a slider's value over unchecked: an extension that gave its slider a text value
    (Deforum's `gr.Slider(0, 50, step=1, value='0')`) got that text back, which Gradio 6 compared with the
    bounds and failed the whole event on."""
    g = compat_gradio()  # the `gradio` extension code imports
    with gr.Blocks() as demo:
        with g.Blocks() as extension_tab:
            redo = g.Slider(minimum=0, maximum=50, step=1, value="0", label="Redo generation")
            out = g.Textbox()
            redo.change(lambda r: f"{r!r} {int(r) + 1}", inputs=[redo], outputs=[out])
        extension_tab.render()
    sliders_never_null(demo)
    fn = demo.fns[0]

    assert asyncio.run(demo.preprocess_data(fn, ["0"], state=None)) == ["0"]
    assert asyncio.run(demo.preprocess_data(fn, [3], state=None)) == [3]


def test_an_empty_text_box_hands_over_an_empty_text_not_none():
    """Gradio 6 starts `gr.Textbox()` at None and the page sends null until the user types; Gradio 3 gave
    "" (supermerger splits its empty "Elements" box)."""
    with gr.Blocks() as demo:
        with gr.Blocks() as extension_tab:
            elements = gr.Textbox(label="Elements")
            out = gr.Textbox()
            elements.change(lambda text: f"{len(text.split(','))} parts", inputs=[elements], outputs=[out])
        extension_tab.render()
    textboxes_never_null(demo)
    textboxes_never_null(demo)  # twice: still one wrapper
    fn = demo.fns[0]

    assert asyncio.run(demo.preprocess_data(fn, [None], state=None)) == [""]
    assert asyncio.run(demo.preprocess_data(fn, ["a,b"], state=None)) == ["a,b"]
