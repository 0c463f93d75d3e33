"""`POST /sdapi/v1/merge-checkpoints`: the Checkpoint Merger over HTTP (A1111 has the tab but no route;
the body uses the names of A1111's `run_modelmerger` arguments). `POST /sdapi/v1/lora/merge-into-checkpoint`,
`/sdapi/v1/lora/extract`, `/sdapi/v1/lora/resize`: the LoRA tools. A request that cannot be done is a
400 with the reason; nothing is written then."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from modules.sumi.app import App
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.merging import METHODS
from modules.sumi.services.models.merger import MergeError, MergeRequest
from modules.sumi.services.networks.lora_tools import ToolError, ToolResult


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    primary_model_name: str = Field(description="Primary model (A): a checkpoint title, name or hash.")
    secondary_model_name: str = Field("", description="Secondary model (B).")
    tertiary_model_name: str = Field("", description="Tertiary model (C), for the difference methods.")
    interp_method: str = Field("Weighted sum", description=f"One of: {', '.join(METHODS)}.")
    multiplier: float = Field(0.3, ge=-10, le=10, description="M: B's share (and BASE with block weights).")
    save_as_half: bool = False
    custom_name: str = Field("", max_length=200, description="File name without extension; default A1111's.")
    checkpoint_format: str = Field("safetensors", description="safetensors or ckpt.")
    config_source: int = Field(0, description="0: A, B or C; 1: B; 2: C; 3: don't copy the .yaml.")
    bake_in_vae: str = Field("None", description="A VAE from GET /sdapi/v1/sd-vae, or None.")
    discard_weights: str = Field(
        "", max_length=500, description="Regular expression: matching keys are dropped."
    )
    save_metadata: bool = True
    add_merge_recipe: bool = True
    copy_metadata_fields: bool = True
    metadata_json: str = Field("", max_length=20000, description="A JSON object added to the metadata.")
    block_weights: str = Field(
        "", max_length=2000, description="A preset (GRAD_V, ...) or 26 (SD1/SD2) / 20 (SDXL) block ratios."
    )
    merge_vae: bool = Field(False, description="Blend the VAE too (by default it is the primary's).")
    in_memory: bool = Field(
        False,
        description="Load the result as the active model without writing a file (merge in memory and try).",
    )


class LoraMergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="The checkpoint to bake the LoRAs into.")
    loras: str = Field(
        max_length=5000, description="LoRA tags as in a prompt: <lora:a:0.8> <lora:b:1:lbw=OUTD>."
    )
    custom_name: str = Field("", max_length=200)
    save_as_half: bool = False


class LoraExtractBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tuned_model: str = Field(description="The fine-tuned checkpoint.")
    base_model: str = Field(description="The checkpoint it was tuned from.")
    rank: int = Field(32, ge=1, le=1024)
    conv_rank: int = Field(
        0, ge=0, le=1024, description="Rank of the 3x3 convolutions (LoCon); 0 leaves them out."
    )
    custom_name: str = Field("", max_length=200)
    save_as_half: bool = True


class LoraResizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora: str = Field(description="A LoRA/LoCon file in models/Lora (its name or alias).")
    rank: int = Field(ge=1, le=1024)
    custom_name: str = Field("", max_length=200)
    save_as_half: bool = True


class ToolResponse(BaseModel):
    info: str
    filename: str
    warnings: list[str]


class MergeResponse(BaseModel):
    info: str
    title: str | None = Field(description="The new checkpoint's title in GET /sdapi/v1/sd-models.")
    filename: str


def create_merger_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")  # the login is checked for every route by guard.AccessGuard

    @router.post("/merge-checkpoints", response_model=MergeResponse)
    def merge_checkpoints(body: MergeBody) -> MergeResponse:
        try:
            fields = body.model_dump()
            in_memory = fields.pop("in_memory")
            result = app.merger.merge(MergeRequest(**fields), in_memory=in_memory)
        except MergeError as exc:
            raise InvalidRequestError(str(exc)) from exc
        title = result.checkpoint.title if result.checkpoint is not None else None
        return MergeResponse(info=result.message, title=title, filename=result.path.name)

    def tool(run) -> ToolResponse:
        try:
            result: ToolResult = run()
        except ToolError as exc:
            raise InvalidRequestError(str(exc)) from exc
        return ToolResponse(info=result.message, filename=result.path.name, warnings=list(result.warnings))

    @router.post("/lora/merge-into-checkpoint", response_model=ToolResponse)
    def lora_merge(body: LoraMergeBody) -> ToolResponse:
        tools = app.lora_tools
        return tool(
            lambda: tools.merge_into_checkpoint(
                body.checkpoint, body.loras, body.custom_name, body.save_as_half
            )
        )

    @router.post("/lora/extract", response_model=ToolResponse)
    def lora_extract(body: LoraExtractBody) -> ToolResponse:
        tools = app.lora_tools
        return tool(
            lambda: tools.extract(
                body.tuned_model,
                body.base_model,
                body.rank,
                body.conv_rank,
                body.custom_name,
                body.save_as_half,
            )
        )

    @router.post("/lora/resize", response_model=ToolResponse)
    def lora_resize(body: LoraResizeBody) -> ToolResponse:
        tools = app.lora_tools
        return tool(lambda: tools.resize(body.lora, body.rank, body.custom_name, body.save_as_half))

    return router
