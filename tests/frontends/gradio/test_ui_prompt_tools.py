"""Prompt-box tools: the token counters (`N/75`) and Ctrl+Up/Down emphasis editing (A1111's
edit-attention), Alt+Left/Right item moving: the handlers, without a browser. In Chromium:
tests/browser/test_ui_prompt_tools_browser.py."""

from __future__ import annotations

import gradio as gr
import pytest

from modules.sumi.frontends.gradio import token_counter


# -- handlers -----------------------------------------------------------------------------------------
class FakeApp:
    """What the token counter uses of the App: `app.text.count_tokens` (here the app is its own text)."""

    def __init__(self, result=(3, 75), error: Exception | None = None):
        self.calls: list[tuple[str, int]] = []
        self.result, self.error = result, error
        self.text = self

    def count_tokens(self, text: str, steps: int = 20, *, negative: bool = False) -> tuple[int, int]:
        self.calls.append((text, steps))
        if self.error is not None:
            raise self.error
        return self.result


def test_counter_html_is_a1111s_badge():
    assert token_counter.counter_html(0, 75) == "<span>0/75</span>"
    assert token_counter.counter_html(100, 150) == "<span>100/150</span>"


@pytest.mark.parametrize(
    ("steps", "passed"), [(30.0, 30), (30, 30), ("12", 12), (None, 20), ("", 20), ("x", 20), (0, 1)]
)
def test_count_passes_the_prompt_and_the_steps_slider_value(steps, passed):
    app = FakeApp(result=(80, 150))
    assert token_counter.count(app, "a cat", steps) == "<span>80/150</span>"
    assert app.calls == [("a cat", passed)]


def test_count_of_no_prompt_is_of_the_empty_text():
    app = FakeApp(result=(0, 75))
    assert token_counter.count(app, None) == "<span>0/75</span>"
    assert app.calls == [("", 20)]


def test_a_prompt_that_cannot_be_counted_leaves_the_badge(caplog):
    app = FakeApp(error=ValueError("bad schedule"))
    assert token_counter.count(app, "[a:b:", 20) == gr.skip()
    assert "could not count" in caplog.text


def test_each_prompt_is_counted_with_the_steps_slider_value():
    app = FakeApp(result=(5, 75))
    assert token_counter.count(app, "a", 7.0) == "<span>5/75</span>"
    assert token_counter.count(app, "b", 7.0, negative=True) == "<span>5/75</span>"
    assert app.calls == [("a", 7), ("b", 7)]


def test_counters_are_laid_out_and_wired_outside_the_queue(tmp_path, make_app):
    from modules.sumi.frontends.gradio import build_ui

    app = make_app(tmp_path, start=False)
    demo = build_ui(app)
    ids = {block_id: block.elem_id for block_id, block in demo.blocks.items()}
    counters = {"txt2img_token_counter", "txt2img_negative_token_counter"}
    for block in demo.blocks.values():
        if block.elem_id in counters:
            assert block.value == "<span>0/75</span>" and "token-counter" in block.elem_classes
    wired = {}
    for fn in demo.fns.values():
        outputs = sorted(o.elem_id or "" for o in fn.outputs)
        if counters & set(outputs):
            trigger = tuple((ids[block_id], event) for block_id, event in fn.targets)
            wired[trigger] = ([i.elem_id for i in fn.inputs], outputs)
            assert fn.trigger_mode == "always_last" and fn.concurrency_limit is None
    # one event per badge, fired by its prompt and by the steps: its answers cannot overtake each other
    assert wired == {
        (("txt2img_prompt", "change"), ("txt2img_steps", "change")): (
            ["txt2img_prompt", "txt2img_steps"],
            ["txt2img_token_counter"],
        ),
        (("txt2img_neg_prompt", "change"), ("txt2img_steps", "change")): (
            ["txt2img_neg_prompt", "txt2img_steps"],
            ["txt2img_negative_token_counter"],
        ),
    }


def test_the_negative_prompt_is_not_split_at_and(tmp_path, make_app):
    app = make_app(tmp_path)
    long_part = ", ".join(["red fox"] * 30)
    text = f"{long_part} AND {long_part}"
    assert app.text.count_tokens(text)[0] < app.text.count_tokens(text, negative=True)[0]
