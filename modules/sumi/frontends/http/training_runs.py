"""Sumi's training runs over HTTP: list them and follow one (loss curve, samples, files, status).

`GET /sdapi/v1/training/runs` and `GET /sdapi/v1/training/runs/{id}`; a run is started by the kind's own
route (A1111's `/sdapi/v1/train/embedding`, ...). Paths are given relative to the data folder, never
as absolute paths of the server's disk.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modules.sumi.app import App
from modules.sumi.engine.errors import NotFoundError
from modules.sumi.services.training.run import RunView


def create_training_runs_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1/training")

    @router.get("/runs")
    def runs() -> list[dict[str, Any]]:
        return [run_summary(app, r.view()) for r in list(app.training.runs.runs)]

    @router.get("/runs/{run_id}")
    def run(run_id: str) -> dict[str, Any]:
        found = app.training.runs.get(run_id)
        if found is None:
            raise NotFoundError(f"no training run {run_id!r} in this server session")
        view = found.view()
        return {
            **run_summary(app, view),
            "losses": [{"step": p.step, "loss": p.loss, "learn_rate": p.learn_rate} for p in view.losses],
            "samples": [
                {"step": s.step, "path": app.paths.shown(s.path), "prompt": s.prompt} for s in view.samples
            ],
        }

    return router


def run_summary(app: App, view: RunView) -> dict[str, Any]:
    return {
        "id": view.id,
        "kind": view.kind,
        "name": view.name,
        "status": view.status,
        "step": view.step,
        "steps": view.steps,
        "loss": view.losses[-1].loss if view.losses else None,
        "eta_seconds": view.eta_seconds,
        "message": view.message,
        "files": [app.paths.shown(f) for f in view.files],
    }
