"""A1111's training routes: `POST /sdapi/v1/create/embedding`, `/create/hypernetwork`,
`/train/embedding`, `/train/hypernetwork`.

Bodies are the A1111 functions' keyword arguments (A1111 passes them through as `**args`); an unknown
key or a mistyped value is a 422 (create) or 400 (train) naming the field, and so is a missing dataset
folder or template, checked before anything is queued. Training runs as a job on the one queue
(progress and interrupt work as for any job) and the route answers when it is over, with A1111's
`{"info": "train embedding complete: filename: ... error: None"}`; a run that fails midway (a loss
gone to NaN) answers the same way with the error, as A1111 does. A1111 answers the hypernetwork route
with "train embedding complete" too; kept, since clients match that text.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from modules.sumi.app import App
from modules.sumi.services.training.a1111 import output_file
from modules.sumi.services.training.a1111_settings import (
    EmbeddingTrainingSettings,
    HypernetworkTrainingSettings,
)
from modules.sumi.services.training.run import TrainingRun

_Name = Annotated[str, Field(min_length=1, max_length=150)]


class CreateEmbeddingRequest(BaseModel):
    """A1111's `create_embedding(name, num_vectors_per_token, overwrite_old, init_text)`."""

    model_config = ConfigDict(extra="forbid")

    name: _Name
    num_vectors_per_token: StrictInt = Field(default=1, ge=1, le=75)
    overwrite_old: StrictBool = False
    init_text: StrictStr = Field(default="*", max_length=1000)


class CreateHypernetworkRequest(BaseModel):
    """A1111's `create_hypernetwork(...)` arguments (structures as "1, 2, 1" text or lists)."""

    model_config = ConfigDict(extra="forbid")

    name: _Name
    enable_sizes: list[StrictInt | StrictStr] = Field(min_length=1, max_length=16)
    overwrite_old: StrictBool = False
    layer_structure: StrictStr | list[float] | None = None
    activation_func: StrictStr | None = None
    weight_init: StrictStr | None = None
    add_layer_norm: StrictBool = False
    use_dropout: StrictBool = False
    dropout_structure: StrictStr | list[float] | None = None


class CreateResponse(BaseModel):
    info: str = Field(
        title="Create info", description="Response string from create embedding or hypernetwork task."
    )


class TrainResponse(BaseModel):
    info: str = Field(
        title="Train info", description="Response string from train embedding or hypernetwork task."
    )


def _train_info(run: TrainingRun) -> str:
    view = run.view()
    error = view.message if view.status == "failed" else None
    filename = output_file(run) or ""
    return f"train embedding complete: filename: {filename} error: {error}"


def create_training_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")  # the login is checked for every route by guard.AccessGuard
    a1111 = app.a1111_training

    @router.post("/create/embedding", response_model=CreateResponse)
    def create_embedding(req: CreateEmbeddingRequest) -> CreateResponse:
        path = a1111.create_embedding(req.name, req.num_vectors_per_token, req.overwrite_old, req.init_text)
        return CreateResponse(info=f"create embedding filename: {path}")

    @router.post("/create/hypernetwork", response_model=CreateResponse)
    def create_hypernetwork(req: CreateHypernetworkRequest) -> CreateResponse:
        path = a1111.create_hypernetwork(**req.model_dump())
        return CreateResponse(info=f"create hypernetwork filename: {path}")

    @router.post("/train/embedding", response_model=TrainResponse)
    def train_embedding(args: Annotated[dict[str, Any], Body()]) -> TrainResponse:
        run = a1111.train_embedding(EmbeddingTrainingSettings.from_args(args))
        return TrainResponse(info=_train_info(run))

    @router.post("/train/hypernetwork", response_model=TrainResponse)
    def train_hypernetwork(args: Annotated[dict[str, Any], Body()]) -> TrainResponse:
        run = a1111.train_hypernetwork(HypernetworkTrainingSettings.from_args(args))
        return TrainResponse(info=_train_info(run))

    return router
