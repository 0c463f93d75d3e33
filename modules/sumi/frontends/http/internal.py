"""A1111's `/internal/...` routes that its page and extensions' page scripts call.

`/internal/progress` is what A1111's `requestProgress()` polls: whether a task id waits, runs or is done,
its progress and ETA, and a live preview when it changed since the one the page has. Extensions that
queue their own tasks (agent-scheduler) show their progress bars this way. `/internal/pending-tasks`
lists the waiting ids; `/internal/ping` tells a restarting page whether the server is back;
`/internal/sysinfo` (and `-download`) is the system information the Settings tab links to;
`/internal/quicksettings-hint` names every setting with its label.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt

from modules.sumi.services.images.saving import encode_image_base64

if TYPE_CHECKING:
    from modules.sumi.app import App

PREFIX = "/internal/"


class ProgressRequest(BaseModel):
    id_task: str | None = Field(default=None, description="id of the task to report on")
    id_live_preview: StrictInt = Field(default=-1, description="id of the last live preview the page has")
    live_preview: StrictBool = Field(default=True, description="include the live preview image")


class ProgressResponse(BaseModel):
    active: bool = Field(description="the task runs now")
    queued: bool = Field(description="the task waits in the queue")
    completed: bool = Field(description="the task has finished")
    progress: float | None = Field(default=None, description="0..1")
    eta: float | None = Field(default=None, description="seconds left")
    live_preview: str | None = Field(default=None, description="the current live preview, a data: URI")
    id_live_preview: int | None = Field(default=None, description="send it back to skip the same image")
    textinfo: str | None = Field(default=None, description="the text the page shows")


def is_internal_route(path: str) -> bool:
    """The request path is one of the page's own `/internal/` calls."""
    return path.startswith(PREFIX)


def progress_of(app: App, req: ProgressRequest) -> ProgressResponse:
    status = app.queue.tasks.status(req.id_task)
    if not status.active:
        text = f"In queue: {status.position}/{status.waiting}" if status.queued else "Waiting..."
        return ProgressResponse(
            active=False, queued=status.queued, completed=status.completed, id_live_preview=-1, textinfo=text
        )
    snap = app.state.snapshot()
    preview, preview_id = None, req.id_live_preview
    if req.live_preview and snap.preview is not None and snap.preview_id != req.id_live_preview:
        image_format = str(getattr(app.options, "live_previews_image_format", "png") or "png")
        preview = f"data:image/{image_format};base64,{encode_image_base64(snap.preview, None, image_format)}"
        preview_id = snap.preview_id
    return ProgressResponse(
        active=True,
        queued=status.queued,
        completed=status.completed,
        progress=snap.progress,
        eta=snap.eta_relative if snap.progress > 0 else None,
        live_preview=preview,
        id_live_preview=preview_id,
        textinfo=snap.textinfo or ("Waiting..." if not snap.active else ""),
    )


class StartupProfile(BaseModel):
    """A1111's `timer.startup_record`: seconds in all and per category ("load scripts/<file>"...)."""

    total: float
    records: dict[str, float]


def mount(server: FastAPI, app: App) -> None:
    @server.get("/internal/profile-startup", response_model=StartupProfile | None)
    def profile_startup() -> dict[str, object] | None:
        """Where the start's time went (null until the server is built), as A1111's route."""
        return app.startup_record

    @server.get("/internal/ping", include_in_schema=False)
    def ping() -> dict[str, str]:
        """A1111's liveness check; `boot_id` changes with every start (a restarting page waits for it)."""
        return {"boot_id": app.boot_id}

    @server.post("/internal/progress", response_model=ProgressResponse)
    def progress(req: ProgressRequest) -> ProgressResponse:
        return progress_of(app, req)

    @server.get("/internal/pending-tasks")
    def pending_tasks() -> dict[str, int | list[str]]:
        waiting = app.queue.tasks.waiting()
        return {"size": len(waiting), "tasks": waiting}

    @server.get("/internal/quicksettings-hint")
    def quicksettings_hint() -> list[dict[str, str]]:
        """A1111's: every setting's name and label (its Settings page lists them beside the
        quicksettings list, and extensions' pages read them to name settings)."""
        return [{"name": key, "label": str(info.label)} for key, info in app.options.data_labels.items()]

    @server.get("/internal/sysinfo", response_class=PlainTextResponse)
    def sysinfo(attachment: bool = False) -> PlainTextResponse:
        """A1111's system information for bug reports (JSON text, secrets masked); `attachment`:
        the browser saves it as a file."""
        return sysinfo_response(app, attachment)

    @server.get("/internal/sysinfo-download", response_class=PlainTextResponse)
    def sysinfo_download() -> PlainTextResponse:
        return sysinfo_response(app, attachment=True)


def sysinfo_response(app: App, attachment: bool) -> PlainTextResponse:
    name = f"sysinfo-{datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d-%H-%M')}.json"
    disposition = f'{"attachment" if attachment else "inline"}; filename="{name}"'
    return PlainTextResponse(app.sysinfo(), headers={"Content-Disposition": disposition})
