"""Sumi's fine-tune / DreamBooth training routes: `POST /sdapi/v1/train/finetune` and
`/sdapi/v1/train/finetune/submit`.

The body is `FinetuneTrainingSettings`' fields; an unknown key, a mistyped value, a missing dataset or
class folder or a bad choice is a 400 naming the field, checked before anything is queued.
`/train/finetune` answers when the run is over, in the words of A1111's training routes
(`{"info": "train finetune complete: filename: ... error: None", "run": "<id>"}`);
`/train/finetune/submit` answers at once with the run id, for clients that poll
`GET /sdapi/v1/training/runs/{id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from modules.sumi.app import App
from modules.sumi.services.training.a1111 import output_file
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings
from modules.sumi.services.training.run import TrainingRun


class TrainFinetuneResponse(BaseModel):
    info: str = Field(title="Train info", description="Response string from the fine-tune training task.")
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")


class SubmitFinetuneResponse(BaseModel):
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")
    status: str = Field(title="Status", description="The run's status when it was queued.")


def train_info(run: TrainingRun) -> str:
    view = run.view()
    error = view.message if view.status == "failed" else None
    return f"train finetune complete: filename: {output_file(run) or ''} error: {error}"


def create_training_finetune_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1/train")  # the login is checked for every route by guard.AccessGuard

    @router.post("/finetune", response_model=TrainFinetuneResponse)
    def train_finetune(args: Annotated[dict[str, Any], Body()]) -> TrainFinetuneResponse:
        run = app.finetune_training.train(FinetuneTrainingSettings.from_args(args))
        return TrainFinetuneResponse(info=train_info(run), run=run.id)

    @router.post("/finetune/submit", response_model=SubmitFinetuneResponse)
    def submit_finetune(args: Annotated[dict[str, Any], Body()]) -> SubmitFinetuneResponse:
        run, _job = app.finetune_training.submit(FinetuneTrainingSettings.from_args(args))
        return SubmitFinetuneResponse(run=run.id, status=run.view().status)

    return router
