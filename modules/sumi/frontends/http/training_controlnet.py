"""Sumi's ControlNet training routes: `POST /sdapi/v1/train/controlnet` and `/sdapi/v1/train/controlnet/submit`.

The body is `ControlNetTrainingSettings`' fields; an unknown key, a mistyped value, a missing dataset or
conditioning folder, a training image without its control image or a bad choice is a 400 naming the
field, checked before anything is queued. `/train/controlnet` answers when the run is over, in the words
of A1111's training routes (`{"info": "train controlnet complete: filename: ... error: None", "run":
"<id>"}`); `/train/controlnet/submit` answers at once with the run id, for clients that poll
`GET /sdapi/v1/training/runs/{id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from modules.sumi.app import App
from modules.sumi.services.training.a1111 import output_file
from modules.sumi.services.training.controlnet_settings import ControlNetTrainingSettings
from modules.sumi.services.training.run import TrainingRun


class TrainControlNetResponse(BaseModel):
    info: str = Field(title="Train info", description="Response string from the ControlNet training task.")
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")


class SubmitControlNetResponse(BaseModel):
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")
    status: str = Field(title="Status", description="The run's status when it was queued.")


def train_info(run: TrainingRun) -> str:
    view = run.view()
    error = view.message if view.status == "failed" else None
    return f"train controlnet complete: filename: {output_file(run) or ''} error: {error}"


def create_training_controlnet_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1/train")  # the login is checked for every route by guard.AccessGuard

    @router.post("/controlnet", response_model=TrainControlNetResponse)
    def train_controlnet(args: Annotated[dict[str, Any], Body()]) -> TrainControlNetResponse:
        run = app.controlnet_training.train(ControlNetTrainingSettings.from_args(args))
        return TrainControlNetResponse(info=train_info(run), run=run.id)

    @router.post("/controlnet/submit", response_model=SubmitControlNetResponse)
    def submit_controlnet(args: Annotated[dict[str, Any], Body()]) -> SubmitControlNetResponse:
        run, _job = app.controlnet_training.submit(ControlNetTrainingSettings.from_args(args))
        return SubmitControlNetResponse(run=run.id, status=run.view().status)

    return router
