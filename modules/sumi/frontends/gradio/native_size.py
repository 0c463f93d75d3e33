"""Size sliders that follow the checkpoint's trained size (as Forge's UI presets do, but from the file).

When the page loads or another checkpoint is picked, each tab's width and height move to the new model's
trained size (`services.models.native_size`), but only while they still show the size of the model
before it: a size the user chose stays. So the demo model starts at its 128x128, and picking an SD1.5
file afterwards goes back to 512x512 (an SDXL file that says so: 1024x1024).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import gradio as gr

from modules.sumi.app import App
from modules.sumi.frontends.gradio.quicksettings import QuickSettings
from modules.sumi.services.models.native_size import DEFAULT_SIZE, native_size

SizePair = tuple[gr.components.Component, gr.components.Component]


def checkpoint_size(app: App, title: str | None) -> tuple[int, int]:
    info = app.checkpoints.match(title) if title else None
    return native_size(info.filename if info is not None else None)


def loaded_model_size(app: App) -> tuple[int, int] | None:
    """The trained size of the loaded checkpoint (None when none is loaded)."""
    active = app.models.active
    return native_size(active.checkpoint.filename) if active is not None else None


def follow_size(app: App, title: str | None, last: Sequence[int] | None, *sizes: Any) -> list[Any]:
    """New slider values (width, height per pair, then the size now followed) for checkpoint `title`.

    A pair the user changed is left alone (`gr.skip()`), not sent back: an echo of the values read when
    the event started would undo a number the user typed while the model loaded."""
    new = checkpoint_size(app, title)
    before = tuple(int(v) for v in last) if last else DEFAULT_SIZE
    out: list[Any] = []
    for width, height in zip(sizes[::2], sizes[1::2], strict=True):
        shown = (int(width), int(height)) if width is not None and height is not None else None
        out += list(new) if shown == before else [gr.skip(), gr.skip()]
    return [*out, list(new)]


def wire_native_size(app: App, blocks: gr.Blocks, quick: QuickSettings, pairs: Sequence[SizePair]) -> None:
    """On page load, and after the user picked a checkpoint (the dropdown then shows the model in use,
    the previous one when the pick failed to load)."""
    checkpoint = quick.checkpoint
    followed = gr.State(list(DEFAULT_SIZE))
    sliders = [slider for pair in pairs for slider in pair]
    event = {
        "fn": partial(follow_size, app),
        "inputs": [checkpoint, followed, *sliders],
        "outputs": [*sliders, followed],
        "show_progress": "hidden",
        "api_visibility": "undocumented",
    }
    # the page script (and browser tests) can tell the sliders have their first values
    blocks.load(**event).then(fn=None, js="() => { window.sumiSizesFollowed = true; }")
    quick.picked.then(**event)
