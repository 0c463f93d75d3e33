"""The Gradio 3 test extension (tests/fixtures/gradio3_extension.py) in Chromium: its controls render,
its `_js=` + `Component.update` event works, its tab is there, and what the user sets in its controls
reaches its script when Generate is pressed. The layer's mappings one by one:
tests/frontends/gradio/test_gradio3_compat.py."""

from __future__ import annotations

import pytest

from tests.app_support import serve
from tests.browser_support import generate, open_page, small_job
from tests.fixtures.files import write_files
from tests.fixtures.gradio3_extension import GR3_EXTENSION, NAME


@pytest.fixture(scope="module")
def page(make_module_app, tmp_path_factory, chromium):
    data = tmp_path_factory.mktemp("gr3-browser") / "data"
    write_files(data / "extensions" / NAME, GR3_EXTENSION)
    app = make_module_app(data, "--skip-install")
    errors: list[str] = []
    with serve(app) as url, open_page(chromium, url, errors=errors) as page:
        page.sumi_errors = errors  # type: ignore[attr-defined]
        yield page


def test_the_gradio3_extension_renders_and_its_js_event_updates_a_textbox(page):
    container = page.locator("#txt2img_script_container")
    assert container.get_by_label("gr3 size").first.input_value() == "256"
    assert container.get_by_label("Preset").input_value() == "portrait"  # a value outside its choices
    assert page.locator("#tab_txt2img #gr3_sketch").count() == 1
    note = container.get_by_label("gr3 note")
    assert note.input_value() == "note"
    container.get_by_role("button", name="Fill").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#txt2img_script_container textarea')]"
        ".some(t => t.value === 'filled')"
    )
    page.get_by_role("tab", name="Gr3 Tab").click()
    page.locator("#gr3_tab_text").wait_for()
    assert not [e for e in page.sumi_errors if "gr3" in e.lower()]


def test_values_set_in_the_gradio3_controls_reach_the_script_on_generate(page):
    page.get_by_role("tab", name="txt2img").click()
    small_job(page, "a fox")
    container = page.locator("#txt2img_script_container")
    container.get_by_label("Enable gr3").first.check()
    note = container.get_by_label("gr3 note")
    note.fill("from the page")
    note.press("Tab")
    infotext = generate(page, "gr3:")
    assert "gr3: 256/portrait/from the page/True" in infotext
