"""Settings > Defaults: which page values count as changes, and how Apply writes ui-config.json (the clicks
in Chromium are in tests/browser/test_ui_settings_browser.py)."""

from __future__ import annotations

import json

from modules.sumi.frontends.gradio.ui_config import UiConfig
from modules.sumi.frontends.gradio.ui_defaults import PageInputs, apply_changes, changes, view_changes

PATHS = [
    "txt2img/Sampling steps/value",
    "txt2img/Width/value",
    "txt2img/Height/value",
    "txt2img/Prompt/value",
]
SAVED = {PATHS[0]: 20, PATHS[1]: 512, PATHS[2]: 512, PATHS[3]: ""}


def _page(model_size=(128, 128)) -> PageInputs:
    return PageInputs(PATHS, [(1, 2)], lambda: model_size)


def _config(tmp_path, saved=SAVED) -> UiConfig:
    path = tmp_path / "ui-config.json"
    path.write_text(json.dumps(saved), encoding="utf-8")
    return UiConfig(path)


def test_a_changed_value_is_a_change_an_empty_or_odd_one_is_not():
    assert changes(SAVED, PATHS, (33, 512, 512, None)) == [(PATHS[0], 20, 33)]
    assert changes(SAVED, PATHS, (20, 512, 512, {"an": "object"})) == []


def test_a_size_that_follows_the_loaded_model_is_left_out_and_a_chosen_one_is_kept():
    assert _page().changes(SAVED, (20, 128, 128, "")) == []
    assert _page().changes(SAVED, (20, 768, 640, "")) == [(PATHS[1], 512, 768), (PATHS[2], 512, 640)]
    assert _page(model_size=None).changes(SAVED, (20, 128, 128, "")) == [
        (PATHS[1], 512, 128),
        (PATHS[2], 512, 128),
    ]


def test_view_lists_the_changes_escaped(tmp_path):
    config = _config(tmp_path)
    assert view_changes(config, _page(), 20, 512, 512, "") == "<span>No changes</span>"
    table = view_changes(config, _page(), 20, 512, 512, "<script>alert(1)</script>")
    assert "<script>" not in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table


def test_apply_writes_the_changes_and_keeps_a_hand_edit_made_since_the_start(tmp_path):
    config = _config(tmp_path)
    hand_edit = {**SAVED, "img2img/Sampling steps/value": 40}
    config.path.write_text(json.dumps(hand_edit), encoding="utf-8")
    assert apply_changes(config, _page(), 33, 512, 512, "a fox") == "Wrote 2 changes."
    written = json.loads(config.path.read_text(encoding="utf-8"))
    assert written == {**hand_edit, PATHS[0]: 33, PATHS[3]: "a fox"}
    assert apply_changes(config, _page(), 33, 512, 512, "a fox") == "Wrote 0 changes."
    assert view_changes(config, _page(), 33, 512, 512, "a fox") == "<span>No changes</span>"


def test_apply_leaves_a_file_it_cannot_read_alone_and_says_so(tmp_path):
    config = _config(tmp_path)
    config.path.write_text("{ broken", encoding="utf-8")
    text = apply_changes(config, _page(), 33, 512, 512, "")
    assert 'class="sumi-error"' in text and "cannot be read" in text
    assert config.path.read_text(encoding="utf-8") == "{ broken"
