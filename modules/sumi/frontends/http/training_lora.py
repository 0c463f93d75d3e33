"""Sumi's LoRA / LyCORIS training routes: `POST /sdapi/v1/train/lora` and `/sdapi/v1/train/lora/submit`.

The body is `LoraTrainingSettings`' fields; an unknown key, a mistyped value, a missing dataset folder
or a bad choice is a 400 naming the field, checked before anything is queued. `/train/lora` answers
when the run is over, in the words of A1111's training routes
(`{"info": "train lora complete: filename: ... error: None", "run": "<id>"}`); `/train/lora/submit`
answers at once with the run id, for clients that poll `GET /sdapi/v1/training/runs/{id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from modules.sumi.app import App
from modules.sumi.services.training.a1111 import output_file
from modules.sumi.services.training.lora_settings import LoraTrainingSettings
from modules.sumi.services.training.run import TrainingRun


class TrainLoraResponse(BaseModel):
    info: str = Field(title="Train info", description="Response string from the LoRA training task.")
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")


class SubmitLoraResponse(BaseModel):
    run: str = Field(title="Run id", description="The run at GET /sdapi/v1/training/runs/{id}.")
    status: str = Field(title="Status", description="The run's status when it was queued.")


def train_info(run: TrainingRun) -> str:
    view = run.view()
    error = view.message if view.status == "failed" else None
    return f"train lora complete: filename: {output_file(run) or ''} error: {error}"


def create_training_lora_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1/train")  # the login is checked for every route by guard.AccessGuard

    @router.post("/lora", response_model=TrainLoraResponse)
    def train_lora(args: Annotated[dict[str, Any], Body()]) -> TrainLoraResponse:
        run = app.lora_training.train(LoraTrainingSettings.from_args(args))
        return TrainLoraResponse(info=train_info(run), run=run.id)

    @router.post("/lora/submit", response_model=SubmitLoraResponse)
    def submit_lora(args: Annotated[dict[str, Any], Body()]) -> SubmitLoraResponse:
        run, _job = app.lora_training.submit(LoraTrainingSettings.from_args(args))
        return SubmitLoraResponse(run=run.id, status=run.view().status)

    return router
