"""An extension's own tab with its own Generate button, built the way A1111 1.10 extensions build one
(Deforum's pattern), in Chromium: the button's page script calls A1111's `rememberGallerySelection`,
`showSubmitButtons`, `randomId`, `requestProgress` (with the `<tab>_gallery_container` group that
`ui.create_output_panel` makes) and `create_submit_args`, and puts the task id into a hidden `gr.Label`;
the handler, wrapped in `call_queue.wrap_gradio_gpu_call`, gets that id and a slider's text value as
Gradio 3 handed them over, and its images reach the panel's gallery."""

from __future__ import annotations

import pytest

from tests.app_support import serve
from tests.browser_support import open_page, wait_text
from tests.fixtures.files import write_files

NAME = "anim-ext"
SCRIPT = """
import gradio as gr
from PIL import Image

from modules import script_callbacks, shared
from modules.call_queue import wrap_gradio_gpu_call
from modules.ui import create_output_panel


def run(task_id, _unused, prompt, redo):
    frames = [Image.new("RGB", (16, 16), (40 * i, 90, 200)) for i in range(3)]
    return frames, "{}", f"{task_id} | {prompt} | redo {redo!r} {int(redo) + 1}"


def on_ui_tabs():
    with gr.Blocks(analytics_enabled=False) as tab:
        dummy = gr.Label(visible=False)
        prompt = gr.Textbox("a fox running", label="Animation prompt", elem_id="anim_prompt")
        redo = gr.Slider(label="Redo generation", minimum=0, maximum=50, step=1, value="0")
        with gr.Row(elem_id="anim_generate_box"):
            skip = gr.Button("Pause/Resume", elem_id="anim_skip", visible=False)
            interrupt = gr.Button("Interrupt", elem_id="anim_interrupt")
            interrupting = gr.Button("Interrupting...", elem_id="anim_interrupting")
            submit = gr.Button("Generate", elem_id="anim_generate", variant="primary")
        panel = create_output_panel("anim", shared.opts.outdir_img2img_samples)
        submit.click(
            fn=wrap_gradio_gpu_call(run),
            _js="submit_anim",
            inputs=[dummy, dummy, prompt, redo],
            outputs=[panel.gallery, panel.generation_info, panel.infotext],
        )
    return [(tab, "Anim", "anim_interface")]


script_callbacks.on_ui_tabs(on_ui_tabs)
"""
PAGE_SCRIPT = """
function submit_anim() {
    rememberGallerySelection('anim_gallery');
    showSubmitButtons('anim', false);
    window.animButtonsWhileRunning = gradioApp().getElementById('anim_interrupt').style.display;
    var id = randomId();
    requestProgress(id, gradioApp().getElementById('anim_gallery_container'),
        gradioApp().getElementById('anim_gallery'), function () {
            showSubmitButtons('anim', true);
            window.animProgressEnded = true;
        });
    var res = create_submit_args(arguments);
    res[0] = id;
    return res;
}
"""


@pytest.fixture(scope="module")
def page(make_module_app, tmp_path_factory, chromium):
    data = tmp_path_factory.mktemp("anim-tab") / "data"
    write_files(
        data / "extensions" / NAME,
        {"scripts/anim.py": SCRIPT, "javascript/anim.js": PAGE_SCRIPT},
    )
    app = make_module_app(data, "--skip-install")
    errors: list[str] = []
    with serve(app) as url, open_page(chromium, url, errors=errors) as page:
        page.sumi_errors = errors  # type: ignore[attr-defined]
        yield page


def test_an_extension_tabs_generate_runs_with_a1111s_submit_helpers(page):
    page.get_by_role("tab", name="Anim").click()
    page.locator("#anim_generate").wait_for()
    assert page.locator("#anim_gallery_container #anim_gallery").count() == 1
    page.click("#anim_generate")

    info = wait_text(page, "#html_info_anim", "redo")
    assert "task(" in info and "| a fox running |" in info
    assert "redo '0' 1" in info  # the slider's text value, as Gradio 3 handed it over
    page.locator("#anim_gallery img").first.wait_for()
    page.wait_for_function("() => window.animProgressEnded === true")
    assert page.evaluate("() => window.animButtonsWhileRunning") == "block"
    shown = "(id) => gradioApp().getElementById(id).style.display"
    assert page.evaluate(shown, "anim_interrupt") == "none"  # showSubmitButtons('anim', true) at the end
    assert page.evaluate(shown, "anim_interrupting") == "none"
    assert not page.sumi_errors
