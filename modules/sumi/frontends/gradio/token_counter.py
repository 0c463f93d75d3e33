"""Token counters on the prompt boxes: A1111's `N/75` badge in each box's top-right corner.

The count comes from `app.text.count_tokens(text, steps)` (prompt schedules need the step count), so the
badge grows to `N/150`, `N/225`, ... as the prompt spills into more 75-token chunks. Counting runs on
every edit of a prompt and every change of the steps slider, outside the job queue (no concurrency
limit) so it never waits behind a running Generate; `trigger_mode="always_last"` drops the stale
requests of fast typing (the debounce) and keeps each badge's answers in order.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

DEFAULT_STEPS = 20
EVENT = {
    "trigger_mode": "always_last",
    "concurrency_limit": None,
    "show_progress": "hidden",
    "api_visibility": "undocumented",
}


def counter_html(tokens: int, limit: int) -> str:
    """What the badge shows, as A1111 renders it."""
    return f"<span>{int(tokens)}/{int(limit)}</span>"


def _steps(value: Any) -> int:
    """The steps slider's value (a float, or junk while the user types in its number box)."""
    try:
        steps = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_STEPS
    return max(steps, 1)


def count(app: App, text: str | None, steps: Any = DEFAULT_STEPS, *, negative: bool = False) -> Any:
    """Handler: the badge for one prompt; a prompt the counter cannot read leaves the badge as it was."""
    try:
        tokens, limit = app.text.count_tokens(text or "", _steps(steps), negative=negative)
    except Exception:  # the counter is a hint; it must never break typing
        log.warning("token counter: could not count %r", text, exc_info=True)
        return gr.skip()
    return counter_html(tokens, limit)


def create_token_counter(elem_id: str) -> gr.HTML:
    """The badge; place it just before its prompt box inside a `.prompt-row` (see style.css)."""
    return gr.HTML(counter_html(0, 75), elem_id=elem_id, elem_classes=["token-counter"], js_on_load=None)


def wire_token_counters(
    app: App,
    prompt: gr.Textbox,
    negative: gr.Textbox,
    steps: gr.Slider | None,
    counters: tuple[gr.HTML, gr.HTML],
    buttons: tuple[gr.Button, gr.Button] | None = None,
) -> None:
    """Recount a prompt whenever it changes (typing, Ctrl+Up/Down, values set by handlers) or the steps
    change. One event per badge with both triggers, so `always_last` also orders a steps change against
    an edit: a slow count of the old text can never overwrite the count of the new one. Without a steps
    slider (an extension's tab built with `ui_toprow.Toprow`) the count is for 20 steps; `buttons` (A1111's
    hidden `{tab}_token_button`s, which page scripts click to ask for a recount) trigger it too."""
    pairs = zip((prompt, negative), counters, (False, True), buttons or (None, None), strict=True)
    for box, counter, is_negative, button in pairs:
        triggers = [box.change] + ([steps.change] if steps is not None else [])
        gr.on(
            triggers + ([button.click] if button is not None else []),
            partial(count, app, negative=is_negative),
            inputs=[box] + ([steps] if steps is not None else []),
            outputs=counter,
            **EVENT,
        )
