"""Live progress of a queued job for the web UI: an A1111-like bar and the latest preview image.

`watch_job` polls the App's job state while a job the UI submitted is waiting or running, and yields
what changed; `progress_html` renders one snapshot. Neither touches gradio, so both are unit-tested.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any

from PIL import Image

from modules.sumi.services.jobs.queue import Job, JobQueue
from modules.sumi.services.jobs.state import JobState, ProgressSnapshot

POLL_SECONDS = 0.3

# Scoped to the progress component by gradio's `css_template` (rules outside a block hit its root).
PROGRESS_CSS = """
.progressDiv { position: relative; height: 1.6em; border-radius: 6px; overflow: hidden;
  background: var(--block-background-fill, #2b2b2b); border: 1px solid var(--border-color-primary, #555); }
.progressDiv .progress { height: 100%; background: var(--color-accent, #f97316); transition: width 0.3s; }
.progressDiv .progress-text { position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; font-size: 0.9em; color: var(--body-text-color, #fff); }
.progress-detail { font-size: 0.85em; opacity: 0.8; margin: 0.25em 0 0.5em; }
"""


@dataclass
class ProgressUpdate:
    """One poll: the progress HTML, and a new preview image (None when it did not change)."""

    html: str
    preview: Image.Image | None = None


def format_eta(seconds: float) -> str:
    """A1111-style ETA text: `7s`, `1m 05s`, `1h 02m 03s`."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def progress_html(snap: ProgressSnapshot, elem_id: str = "txt2img_progress") -> str:
    """The bar with `NN% ETA: Xs`, and a line with the step and batch numbers."""
    percent = max(0.0, min(100.0, snap.progress * 100))
    label = f"{percent:.0f}%"
    if snap.progress > 0 and snap.eta_relative > 0:
        label += f" ETA: {format_eta(snap.eta_relative)}"
    details = []
    if snap.sampling_steps:
        details.append(f"Step {snap.sampling_step}/{snap.sampling_steps}")
    if snap.job_count > 1:
        details.append(f"Batch {min(snap.job_no + 1, snap.job_count)}/{snap.job_count}")
    if snap.interrupted:
        details.append("Interrupting…")
    elif snap.skipped:
        details.append("Skipping…")
    if snap.textinfo:
        details.append(html.escape(snap.textinfo))
    return (
        f'<div class="progressDiv" data-progress="{percent:.1f}">'
        f'<div class="progress" style="width:{percent:.1f}%"></div>'
        f'<div class="progress-text">{label}</div></div>'
        f'<div class="progress-detail">{" · ".join(details)}</div>'
    )


STARTING_HTML = '<div class="progress-detail">Starting (loading the model if needed)…</div>'


def waiting_html(position: int) -> str:
    """Shown while the job waits behind other jobs in the single worker queue."""
    ahead = f" ({position} ahead)" if position > 0 else ""
    return f'<div class="progress-detail">Waiting in queue{ahead}…</div>'


def refresh_seconds(options: Any) -> float:
    """The "Progressbar and preview update period" setting (milliseconds), at least 50 ms."""
    try:
        period = float(getattr(options, "live_preview_refresh_period", POLL_SECONDS * 1000))
    except (TypeError, ValueError):
        period = POLL_SECONDS * 1000
    return max(period, 50.0) / 1000


def watch_job(
    queue: JobQueue, state: JobState, job: Job, poll_seconds: float = POLL_SECONDS
) -> Iterator[ProgressUpdate]:
    """Yield progress until `job` is done (its future then holds the result or the exception)."""
    last_preview_id: int | None = None
    while not job.future.done():
        if queue.current is job:
            snap = state.snapshot()
            preview = _new_preview(snap, last_preview_id)
            if preview is not None:
                last_preview_id = snap.preview_id
            yield ProgressUpdate(progress_html(snap) if snap.active else STARTING_HTML, preview)
        else:
            yield ProgressUpdate(waiting_html(_position(queue, job)))
        wait([job.future], timeout=poll_seconds)


def _new_preview(snap: ProgressSnapshot, last_id: int | None) -> Image.Image | None:
    if snap.preview is None or snap.preview_id == last_id:
        return None
    return snap.preview


def _position(queue: JobQueue, job: Job) -> int:
    pending: list[Any] = queue.pending()
    running = 1 if queue.current is not None else 0
    return (pending.index(job.id) if job.id in pending else 0) + running
