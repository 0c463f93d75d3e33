"""A presets box the way Config-Presets builds one, in Chromium: an always-on script's `after_component`
collects txt2img's fields by `component.elem_id`, and when it sees `txt2img_generation_info_button` (the
end of A1111's results column) it opens a `gr.Box` with a dropdown whose `.change` writes those fields.

The contract: the box is one element with its id and classes (Gradio 6's `Group` drew two nested divs
with the same id: asset_patches.GROUP_ID_ONCE), it is visible at the end of `#txt2img_results`, and a
chosen preset changes steps, CFG scale and width in the page. Where the hook is called:
tests/frontends/gradio/test_ui_scripts.py."""

from __future__ import annotations

import pytest

from tests.app_support import serve
from tests.browser_support import open_page, wait_value
from tests.fixtures.files import write_files

NAME = "sd-webui-fake-presets"

EXTENSION = {
    "scripts/fake_presets.py": """
        import gradio as gr

        import modules.scripts as scripts

        PRESETS = {"None": {}, "Fast": {"steps": 7, "cfg_scale": 3.5, "width": 320}}
        FIELDS = ("steps", "cfg_scale", "width")


        class FakePresets(scripts.Script):
            def __init__(self):
                self.found = {}

            def title(self):
                return "Fake presets"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def after_component(self, component, **kwargs):
                tab = "txt2img" if self.is_txt2img else "img2img"
                for field in FIELDS:
                    if component.elem_id == f"{tab}_{field}":
                        self.found[field] = component
                if component.elem_id != f"{tab}_generation_info_button":
                    return
                fields = [self.found[field] for field in FIELDS]

                def apply(name, *values):
                    chosen = PRESETS[name]
                    return [chosen.get(field, value) for field, value in zip(FIELDS, values)]

                with gr.Box(elem_id=f"fake_presets_wrapper_{tab}", elem_classes=["fake-presets"]):
                    with gr.Row():
                        presets = gr.Dropdown(list(PRESETS), label="Fake presets", elem_id=f"fake_presets_{tab}")
                presets.change(fn=apply, inputs=[presets, *fields], outputs=fields, show_progress=False)
    """,
}


@pytest.fixture(scope="module")
def page(make_module_app, tmp_path_factory, chromium):
    data = tmp_path_factory.mktemp("presets-box") / "data"
    write_files(data / "extensions" / NAME, EXTENSION)
    app = make_module_app(data, "--skip-install")
    with serve(app) as url, open_page(chromium, url) as page:
        yield page


def test_the_presets_box_is_one_visible_element_at_the_end_of_the_results(page):
    for tab in ("txt2img", "img2img"):
        assert page.locator(f"#fake_presets_wrapper_{tab}").count() == 1
        assert page.locator(f"#tab_{tab} .fake-presets").count() == 1
    box = page.locator("#fake_presets_wrapper_txt2img")  # a strict lookup, as tools and extensions make
    box.wait_for(state="visible")
    assert box.evaluate("e => e.parentElement.id") == "txt2img_results"
    assert box.evaluate("e => e.parentElement.lastElementChild === e")


def test_choosing_a_preset_changes_the_txt2img_fields(page):
    page.locator("#fake_presets_txt2img input").click()
    page.get_by_role("option", name="Fast").click()
    wait_value(page, "#txt2img_steps input[type=number]", "7")
    wait_value(page, "#txt2img_cfg_scale input[type=number]", "3.5")
    wait_value(page, "#txt2img_width input[type=number]", "320")
