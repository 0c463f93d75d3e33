"""An extension's "Send to txt2img" button (A1111's infotext_utils.register_paste_params_button) fills the
txt2img fields from an infotext and switches to the txt2img tab; ↙️ restores a script's own setting
and ControlNet units from an infotext. In Chromium against a real server."""

from __future__ import annotations

from pathlib import Path

from tests.app_support import running_server
from tests.browser_support import open_page
from tests.fixtures.files import write_files

EXTENSION = """
import gradio as gr

from modules import infotext_utils, script_callbacks

INFOTEXT = "a lighthouse at dusk\\nNegative prompt: fog\\nSteps: 7, Sampler: Euler, CFG scale: 4.5, Seed: 99, Size: 320x256"


def tab():
    with gr.Blocks() as blocks:
        text = gr.Textbox(INFOTEXT, label="Infotext", elem_id="paste_test_text")
        button = gr.Button("Send to txt2img", elem_id="paste_test_send")
        infotext_utils.register_paste_params_button(
            infotext_utils.ParamBinding(paste_button=button, tabname="txt2img", source_text_component=text)
        )
    return [(blocks, "Paste Test", "paste_test")]


script_callbacks.on_ui_tabs(tab)
"""

SCRIPT = """
import gradio as gr

import modules.scripts as scripts


class Suffix(scripts.Script):
    def title(self):
        return "Suffix"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        suffix = gr.Textbox("", label="Suffix", elem_id="paste_test_suffix")
        self.infotext_fields = [(suffix, "Suffix")]
        return [suffix]
"""


def test_an_extension_paste_button_and_script_infotext_fields_fill_txt2img(tmp_path: Path, chromium):
    data = tmp_path / "data"
    scripts = {"scripts/paste_test.py": EXTENSION, "scripts/suffix.py": SCRIPT}
    write_files(data / "extensions" / "paste-test", scripts)
    with running_server(data) as server, open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Paste Test").click()
        page.click("#paste_test_send")
        page.wait_for_function(
            "() => document.querySelector('#txt2img_prompt textarea').value === 'a lighthouse at dusk'"
        )
        assert page.locator("#txt2img_neg_prompt textarea").input_value() == "fog"
        assert page.locator("#txt2img_steps input[type=number]").input_value() == "7"
        assert page.locator("#txt2img_width input[type=number]").input_value() == "320"
        assert page.locator("#txt2img_seed input").input_value() == "99"
        assert page.locator("#tab_txt2img").is_visible()
        # ↙️ restores a script's own setting from the infotext (its infotext_fields)
        page.fill("#txt2img_prompt textarea", "a cat\nSteps: 3, Sampler: Euler, Suffix: rainy")
        page.click("#paste")
        page.wait_for_function(
            "() => document.querySelector('#paste_test_suffix textarea, #paste_test_suffix input')?.value === 'rainy'"
        )
        page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'a cat'")
        # ... and ControlNet units from their `ControlNet i` entries
        unit = 'ControlNet 0: "Module: canny, Model: None, Weight: 0.5, Guidance End: 0.7"'
        page.fill("#txt2img_prompt textarea", f"a dog\nSteps: 3, Sampler: Euler, {unit}")
        page.click("#paste")
        enable = "#txt2img_controlnet_ControlNet-0_controlnet_enable_checkbox input"
        if not page.locator(enable).count():
            page.click("#txt2img_controlnet > button")  # open the accordion
        page.wait_for_function(f"() => document.querySelector('{enable}')?.checked")
        weight = "#txt2img_controlnet_ControlNet-0_controlnet_control_weight_slider input[type=number]"
        assert page.locator(weight).input_value() == "0.5"
