"""ui-config.json as A1111: the first build writes every tab's input defaults (scripts' controls under
customscript/<file>/..., extension tabs under their id; not Settings or Extensions), and an edited file
changes the page's defaults, min/max/step and visibility on the next build ("Reload UI" or restart)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from modules.sumi.frontends.gradio import build_ui

SCRIPT = """
import gradio as gr
import modules.scripts as scripts


class Remembered(scripts.Script):
    def title(self):
        return "Remembered"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Slider(0, 10, value=3, step=1, label="Script strength", elem_id="remembered_strength")]
"""


def _ext_tab() -> list:
    with gr.Blocks() as blocks:
        gr.Dropdown(["a", "b"], value="a", label="Ext choice", elem_id="ext_choice")
    return [(blocks, "Ext Tab", "ext_tab")]


def _build(app) -> gr.Blocks:
    app.callbacks.entries["ui_tabs"].clear()
    app.callbacks.add("ui_tabs", _ext_tab)
    return build_ui(app)


def _by_id(demo: gr.Blocks, elem_id: str) -> Any:
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


@pytest.fixture(scope="module")
def app(tmp_path_factory, make_module_app):
    root = tmp_path_factory.mktemp("ui-config")
    script = root / "ext" / "scripts" / "remembered.py"
    script.parent.mkdir(parents=True)
    script.write_text(textwrap.dedent(SCRIPT))
    app = make_module_app(root / "data", start=False)
    app.scripts.load([(script, script.parent.parent)])
    return app


@pytest.fixture(scope="module")
def first(app) -> dict:
    _build(app)
    return json.loads(Path(app.paths.ui_config_file).read_text(encoding="utf-8"))


def test_first_build_writes_a1111_keys_with_the_defaults(app, first):
    assert app.paths.ui_config_file == app.paths.data_dir / "ui-config.json"
    assert first["txt2img/Sampling steps/value"] == 20
    assert first["txt2img/Sampling steps/maximum"] == 150 and first["txt2img/Sampling steps/step"] == 1
    assert first["txt2img/Width/value"] == 512 and first["img2img/Width/value"] == 512
    assert first["txt2img/Prompt/value"] == "" and first["txt2img/Prompt/visible"] is True
    assert first["img2img/Denoising strength/value"] == 0.75
    assert first["customscript/remembered.py/txt2img/Script strength/value"] == 3
    assert first["customscript/remembered.py/img2img/Script strength/maximum"] == 10
    assert first["ext_tab/Ext choice/value"] == "a"
    assert "webui/Tabs@tabs/selected" in first
    assert not any(key.startswith(("settings/", "extensions/")) for key in first)


def test_edited_file_sets_the_defaults_on_the_next_build(app, first):
    edited = {
        **first,
        "txt2img/Sampling steps/value": 33,
        "txt2img/Sampling steps/maximum": 200,
        "txt2img/Prompt/value": "a lighthouse",
        "txt2img/Seed/visible": False,
        "txt2img/Sampling method/value": "No such sampler",  # not one of the choices: ignored
        "customscript/remembered.py/txt2img/Script strength/value": 7,
        "ext_tab/Ext choice/value": "b",
        "someone/else/value": 1,  # unknown keys stay in the file
    }
    path = Path(app.paths.ui_config_file)
    path.write_text(json.dumps(edited), encoding="utf-8")
    demo = _build(app)
    steps = _by_id(demo, "txt2img_steps")
    assert (steps.value, steps.maximum) == (33, 200)
    assert _by_id(demo, "txt2img_prompt").value == "a lighthouse"
    assert _by_id(demo, "txt2img_seed").visible is False
    assert _by_id(demo, "txt2img_sampling").value == first["txt2img/Sampling method/value"]
    strengths: list[Any] = [
        b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "remembered_strength"
    ]
    assert sorted(s.value for s in strengths) == [3, 7]  # the txt2img one changed, img2img's did not
    assert _by_id(demo, "ext_choice").value == "b"
    assert _by_id(demo, "txt2img_steps").get_config()["value"] == 33  # what the page receives
    assert json.loads(path.read_text(encoding="utf-8")) == edited  # nothing new: not rewritten


def test_an_unreadable_file_is_named_and_left_alone(app):
    path = Path(app.paths.ui_config_file)
    path.write_text("{broken", encoding="utf-8")
    demo = _build(app)
    assert _by_id(demo, "txt2img_steps").value == 20
    assert path.read_text(encoding="utf-8") == "{broken"
    assert any(str(path) in notice and "UI defaults" in notice for notice in app.notices)


def test_the_main_tab_row_wraps_so_every_extension_tab_button_is_shown(app):
    # as A1111's (Gradio 3) row: not Gradio 6's "..." menu, where users and `#tabs button` lookups miss them
    assert _by_id(_build(app), "tabs").overflow_behavior == "wrap"


def test_use_textbox_seed_makes_both_seeds_text_boxes(tmp_path, make_app):
    plain = build_ui(make_app(tmp_path / "plain", start=False))
    assert isinstance(_by_id(plain, "txt2img_seed"), gr.Number)
    demo = build_ui(make_app(tmp_path / "text", "--use-textbox-seed", start=False))
    assert isinstance(_by_id(demo, "txt2img_seed"), gr.Textbox) and _by_id(demo, "txt2img_seed").value == "-1"
    assert isinstance(_by_id(demo, "img2img_seed"), gr.Textbox)
    assert isinstance(_by_id(demo, "txt2img_subseed"), gr.Number)  # A1111: the main seed only
