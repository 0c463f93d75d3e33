"""The row above the tabs: the checkpoint dropdown with its refresh button, and the App's notices."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.assets import HEAD

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.models.checkpoints import CheckpointInfo

log = logging.getLogger(__name__)


def current_checkpoint(app: App) -> CheckpointInfo | None:
    """The checkpoint the settings select, else the first one found (what loads)."""
    return app.checkpoints.match(app.options.sd_model_checkpoint) or app.checkpoints.first()


def current_checkpoint_title(app: App) -> str | None:
    info = current_checkpoint(app)
    return info.title if info is not None else None


def checkpoint_choices(app: App) -> list[tuple[str, str]]:
    """(title, name) pairs: the title gains a hash once the file is hashed, the name stays the same."""
    return [(info.title, info.name) for info in app.checkpoints.list()]


def notices_html(notices: list[str], error: str | None = None) -> str:
    """The App's notices (e.g. the demo-model one), one per line, plus an error if an action failed."""
    lines = [f'<div class="sumi-notice">{html.escape(text)}</div>' for text in notices]
    if error:
        lines.append(results.error_html(error))
    return "".join(lines)


def checkpoint_update(app: App) -> dict[str, Any]:
    info = current_checkpoint(app)
    return gr.update(choices=checkpoint_choices(app), value=info.name if info is not None else None)


def refresh_checkpoints(app: App) -> tuple[dict[str, Any], str]:
    """🔄: rescan the checkpoint and VAE folders."""
    try:
        app.models.refresh()
    except Exception as exc:
        return checkpoint_update(app), notices_html(app.notices, results.error_message(exc))
    return checkpoint_update(app), notices_html(app.notices)


def select_checkpoint(app: App, title: str | None) -> tuple[dict[str, Any], str]:
    """Switch the model (loads it now, through the job queue); a failure shows in the notices area.

    As in A1111, a checkpoint that fails to load does not stay selected: the previous one comes back.
    """
    if not title:
        return checkpoint_update(app), notices_html(app.notices)
    previous = app.options.sd_model_checkpoint or current_checkpoint_title(app)
    try:
        app.settings.set({"sd_model_checkpoint": title})
    except Exception as exc:
        _restore_checkpoint(app, previous)
        return checkpoint_update(app), notices_html(app.notices, results.error_message(exc))
    return checkpoint_update(app), notices_html(app.notices)


def _restore_checkpoint(app: App, previous: str | None) -> None:
    if app.options.sd_model_checkpoint == previous or previous is None:
        return
    try:
        app.settings.set({"sd_model_checkpoint": previous})
    except Exception:
        log.exception("Could not go back to checkpoint %r", previous)


def page_load(app: App) -> tuple[dict[str, Any], str]:
    """A reloaded page shows the current list and notices, not those of the time the UI was built."""
    return checkpoint_update(app), notices_html(app.notices)


@dataclass
class QuickSettings:
    checkpoint: gr.Dropdown
    refresh: gr.Button
    notices: gr.HTML
    picked: Any = None  # the event of the user picking a checkpoint (others chain `.then` on it)


def create_quicksettings(app: App) -> QuickSettings:
    with gr.Row(elem_id="quicksettings", equal_height=True):
        current = current_checkpoint(app)
        dropdown = gr.Dropdown(
            checkpoint_choices(app),
            value=current.name if current else None,
            label="Stable Diffusion checkpoint",
            elem_id="setting_sd_model_checkpoint",
            scale=0,
            min_width=360,
        )
        refresh = gr.Button(
            "🔄",
            elem_id="refresh_sd_model_checkpoint",
            elem_classes=["tool"],
            size="sm",
            scale=0,
            min_width=40,
        )
    notices = gr.HTML(notices_html(app.notices), elem_id="sumi_notices", js_on_load=None, head=HEAD)
    quick = QuickSettings(dropdown, refresh, notices)
    _wire(app, quick)
    return quick


def _wire(app: App, q: QuickSettings) -> None:
    common = {"outputs": [q.checkpoint, q.notices], "api_visibility": "undocumented"}
    q.refresh.click(
        partial(refresh_checkpoints, app),
        show_progress="hidden",
        concurrency_limit=None,
        trigger_mode="always_last",
        **common,
    )
    q.picked = q.checkpoint.input(
        partial(select_checkpoint, app),
        inputs=q.checkpoint,
        show_progress="full",
        concurrency_id="sumi_checkpoint",
        **common,
    )
