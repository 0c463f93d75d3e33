"""Prompt-box tools in Chromium against a real server with the tiny demo model: the token counters
(`N/75`) while a job runs, Ctrl+Up/Down emphasis editing (A1111's edit-attention) and Alt+Left/Right
item moving. The handlers are tested in tests/frontends/gradio/test_ui_prompt_tools.py."""

from __future__ import annotations

import pytest

from tests.browser_support import NEGATIVE, PROMPT, open_page, set_number, small_job, wait_until

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server(demo_server):
    """The folder's shared demo server: these tests only generate, save outputs and read the page."""
    return demo_server


@pytest.fixture(scope="module")
def page(server, chromium):
    """One page for the whole module (each test sets the prompt boxes it uses)."""
    with open_page(chromium, server.url, timeout_ms=TIMEOUT_MS) as page:
        yield page


def counter_text(page, elem_id: str) -> str:
    return page.inner_text(f"#{elem_id}").strip()


def wait_for_counter(page, elem_id: str, text: str) -> None:
    page.wait_for_function(
        "([id, t]) => document.getElementById(id).innerText.trim() === t", arg=[elem_id, text]
    )


def set_box(page, selector: str, text: str, start: int | None = None, end: int | None = None) -> None:
    """Put `text` in the box (as typing would) and select [start, end) (default: caret at the end)."""
    box = page.locator(selector)
    box.fill(text)
    start = len(text) if start is None else start
    box.evaluate(
        "(el, [s, e]) => { el.focus(); el.setSelectionRange(s, e); }", [start, start if end is None else end]
    )


def state(page, selector: str) -> tuple[str, str]:
    """The box's value and its selected text."""
    return tuple(
        page.locator(selector).evaluate(
            "el => [el.value, el.value.slice(el.selectionStart, el.selectionEnd)]"
        )
    )


def test_counters_sit_on_the_prompt_boxes_and_count_while_a_job_runs(page, server):
    assert counter_text(page, "txt2img_token_counter") == "0/75"
    for counter, box in (
        ("txt2img_token_counter", "txt2img_prompt"),
        ("txt2img_negative_token_counter", "txt2img_neg_prompt"),
    ):
        badge = page.locator(f"#{counter}").bounding_box()
        field = page.locator(f"#{box} textarea").bounding_box()
        assert badge and field and badge["width"] > 0
        assert abs((badge["y"] + badge["height"] / 2) - field["y"]) < 20  # astride the top edge
        assert field["x"] + field["width"] / 2 < badge["x"] < field["x"] + field["width"]  # right half
    # a long job holds the worker; counting must not wait behind it
    small_job(page, "a slow painting", steps=150)
    set_number(page, "txt2img_batch_count", 20)
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => /Step \\d+\\/150/.test(document.querySelector('#txt2img_progress').innerText)"
    )
    try:
        page.locator(PROMPT).fill(" ".join(["cat"] * 100))
        wait_for_counter(page, "txt2img_token_counter", "100/150")
        page.locator(NEGATIVE).press_sequentially("ugly blurry")
        wait_for_counter(page, "txt2img_negative_token_counter", "2/75")
        assert server.app.state.snapshot().active  # the job was still running all along
    finally:
        page.click("#txt2img_interrupt")
    page.wait_for_function(
        "() => document.querySelector('#html_info_txt2img').innerText.includes('Steps: 150')"
    )


def test_a_steps_change_recounts_a_scheduled_prompt_and_the_last_answer_wins(page):
    page.locator(PROMPT).fill("[cat:dog dog dog dog:10]")  # the second part only from step 10 on
    set_number(page, "txt2img_steps", 5)
    wait_for_counter(page, "txt2img_token_counter", "1/75")
    set_number(page, "txt2img_steps", 20)
    wait_for_counter(page, "txt2img_token_counter", "4/75")
    # a steps change and an edit at once: the badge ends on the count of the text as it is now
    set_number(page, "txt2img_steps", 6)
    page.locator(PROMPT).fill("")
    wait_for_counter(page, "txt2img_token_counter", "0/75")


def test_ctrl_up_down_on_a_selection(page, seen):
    set_box(page, PROMPT, "a cat on a mat", 2, 5)
    box = page.locator(PROMPT)
    box.press("Control+ArrowUp")
    assert state(page, PROMPT) == ("a (cat:1.1) on a mat", "cat")
    box.press("Control+ArrowUp")
    assert state(page, PROMPT) == ("a (cat:1.2) on a mat", "cat")
    wait_until(
        lambda: "a (cat:1.2) on a mat" in seen, TIMEOUT_MS / 1000
    )  # Gradio saw the edit (and recounted)
    box.press("Control+ArrowDown")
    box.press("Control+ArrowDown")
    assert state(page, PROMPT) == ("a cat on a mat", "cat")
    box.press("Control+ArrowDown")
    assert state(page, PROMPT) == ("a (cat:0.9) on a mat", "cat")
    box.press("Control+z")  # the edit is an ordinary, undoable one
    assert state(page, PROMPT)[0] == "a cat on a mat"


def test_ctrl_up_down_on_the_word_under_the_cursor(page, seen):
    set_box(page, NEGATIVE, "ugly, blurry hands", 9)  # caret inside "blurry"
    box = page.locator(NEGATIVE)
    box.press("Control+ArrowUp")
    assert state(page, NEGATIVE) == ("ugly, (blurry:1.1) hands", "blurry")
    box.evaluate("el => el.setSelectionRange(14, 14)")  # caret inside the weight: the block is edited
    box.press("Meta+ArrowUp")  # Cmd on macOS
    assert state(page, NEGATIVE) == ("ugly, (blurry:1.2) hands", "blurry")
    box.press("Control+ArrowDown")
    box.press("Control+ArrowDown")
    assert state(page, NEGATIVE) == ("ugly, blurry hands", "blurry")
    # the negative box's last count is of its text now (the prompt box's may come in later: the last
    # test's undo is counted after a debounce)
    wait_until(lambda: [t for t in seen if "hands" in t][-1:] == ["ugly, blurry hands"], TIMEOUT_MS / 1000)
    page.keyboard.press("Alt+ArrowLeft")  # A1111's keyedit_move: swap with the previous item
    assert state(page, NEGATIVE) == (" blurry hands,ugly", " blurry hands")


CASES = [
    # text, selection, up, expected text, expected selection
    ("cat", (0, 3), True, "(cat:1.1)", "cat"),
    ("cat ", (0, 4), True, "(cat:1.1) ", "cat"),  # trailing spaces stay outside
    ("(cat:1.1)", (1, 4), False, "cat", "cat"),
    ("(cat:0.95)", (3, 3), True, "(cat:1.05)", "cat"),
    ("(cat:1.9)", (2, 2), True, "(cat:2.0)", "cat"),
    ("(a cat:1.3), dog", (2, 2), True, "(a cat:1.4), dog", "a cat"),  # whole block under the caret
    ("x <lora:foo:0.8> y", (5, 5), True, "x <lora:foo:0.85> y", "lora:foo"),
    ("x <lora:foo:0.8> y", (5, 5), False, "x <lora:foo:0.75> y", "lora:foo"),
    ("(a (b:1.2) c:1.5)", (12, 12), True, "(a (b:1.2) c:1.6)", "a (b:1.2) c"),
    ("(a (b:1.2) c:1.5)", (4, 4), False, "(a (b:1.1) c:1.5)", "b"),
    ("a (cat) b", (4, 4), True, None, None),  # no weight to edit
    ("a  b", (2, 2), True, None, None),  # nothing under the caret
]


def test_edit_attention_vectors(page):
    results = page.evaluate(
        """cases => cases.map(([text, [s, e], up]) => window.sumiPromptEditing.editAttention(text, s, e, up))""",
        [[text, list(sel), up] for text, sel, up, _, _ in CASES],
    )
    for (text, _, up, want_text, want_sel), got in zip(CASES, results, strict=True):
        if want_text is None:
            assert got is None, text
        else:
            assert (got["text"], got["text"][got["start"] : got["end"]]) == (want_text, want_sel), (text, up)
    precise = page.evaluate(
        "() => window.sumiPromptEditing.editAttention('cat', 0, 3, true, {keyedit_precision_attention: 0.25})"
    )
    assert precise["text"] == "(cat:1.25)"


def test_move_items_vectors(page):
    move = "([t, s, e, left]) => window.sumiPromptEditing.moveItems(t, s, e, left)"
    got = page.evaluate(move, ["a, b, c", 4, 4, True])
    assert (got["text"], got["text"][got["start"] : got["end"]]) == ("a, b, c".replace("a, b", " b,a"), " b")
    got = page.evaluate(move, ["a, b, c", 0, 4, False])  # two items move together
    assert (got["text"], got["text"][got["start"] : got["end"]]) == (" c,a, b", "a, b")
    assert page.evaluate(move, ["a, b", 0, 0, True]) is None
    assert page.evaluate(move, ["a, b", 3, 3, False]) is None
