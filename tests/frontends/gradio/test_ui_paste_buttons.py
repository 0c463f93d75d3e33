"""The txt2img fields an extension's "Send to txt2img" button (A1111's
infotext_utils.register_paste_params_button) fills; the button in Chromium is in
tests/browser/test_ui_paste_buttons_browser.py."""

from __future__ import annotations


def test_paste_fields_cover_the_txt2img_controls():
    from modules.sumi.frontends.gradio import paste_fields

    class Box:
        def __init__(self, value):
            self.value = value

    controls = {"prompt": Box(""), "steps": Box(20), "width": Box(512), "seed_enable_extras": Box(False)}
    fields = paste_fields(controls)
    keys = [key for _, key in fields if isinstance(key, str)]
    assert keys == ["Prompt", "Steps", "Size-1"]
    extras = next(key for _, key in fields if callable(key))
    assert extras({"Variation seed": "3"}) and not extras({"Seed": "1"})
