"""What the Train tab shows of a run: the status line, the loss plot, the sample gallery and the files.

`watch(app, run, job)` yields these four values about once a second until the job is over, so a
training started from the tab draws its loss curve and its samples as they come.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import gradio as gr
import pandas as pd
from PIL import Image

from modules.sumi.services.training.run import RunView, TrainingRun

if TYPE_CHECKING:
    from modules.sumi.app import App

POLL_SECONDS = 1.0
SHOWN_SAMPLES = 16
STATUS_WORDS = {
    "queued": "Waiting for the running job",
    "running": "Training",
    "done": "Training finished",
    "interrupted": "Training interrupted",
    "failed": "Training failed",
}


def status_text(view: RunView) -> str:
    """One line: kind, name, step of steps, loss, ETA (what A1111 shows as its progress text)."""
    parts = [f"{STATUS_WORDS.get(view.status, view.status)}: {view.kind} {view.name!r}"]
    parts.append(f"step {view.step}/{view.steps}")
    if view.losses:
        parts.append(f"loss {view.losses[-1].loss:.5f}")
    eta = view.eta_seconds
    if eta is not None:
        parts.append(f"ETA {_duration(eta)}")
    return ", ".join(parts)


def outcome_html(app: App, view: RunView) -> str:
    """The message (an error in red) and the files written, relative to the data folder."""
    lines = []
    if view.message:
        css = "sumi-error" if view.status == "failed" else "sumi-note"
        lines.append(f'<div class="{css}">{html.escape(view.message)}</div>')
    if view.files:
        items = "".join(f"<li>{html.escape(app.paths.shown(f))}</li>" for f in view.files[-8:])
        lines.append(f"<div>Files written:</div><ul>{items}</ul>")
    return "".join(lines)


def loss_frame(view: RunView) -> pd.DataFrame:
    """step / loss rows for the plot (the plot's y axis is the loss)."""
    return pd.DataFrame({"step": [p.step for p in view.losses], "loss": [p.loss for p in view.losses]})


def loss_frame_empty() -> pd.DataFrame:
    return pd.DataFrame({"step": [], "loss": []})


def sample_gallery(view: RunView) -> list[tuple[Image.Image, str]]:
    """The latest samples as (image, caption); images are read here so no server path is exposed."""
    shown = []
    for sample in view.samples[-SHOWN_SAMPLES:]:
        try:
            with Image.open(sample.path) as image:
                shown.append((image.convert("RGB"), f"step {sample.step}: {sample.prompt}"))
        except OSError:
            continue
    return shown


def snapshot(app: App, view: RunView) -> tuple[str, str, pd.DataFrame, list[tuple[Image.Image, str]]]:
    return status_text(view), outcome_html(app, view), loss_frame(view), sample_gallery(view)


def watch(app: App, run: TrainingRun, job_future: Future) -> Iterator[tuple[Any, ...]]:
    """Yield the run's snapshot while its job is queued or running, and once more at the end."""
    shown_samples = -1
    while not job_future.done():
        view = run.view()
        text, outcome, frame, _ = snapshot(app, view)
        gallery = sample_gallery(view) if len(view.samples) != shown_samples else None
        shown_samples = len(view.samples)
        yield text, outcome, frame, gallery if gallery is not None else _unchanged()
        time.sleep(POLL_SECONDS)
    yield snapshot(app, run.view())


def _unchanged() -> Any:
    return gr.skip()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
