"""sd-webui-controlnet's HTTP routes (`/controlnet/...`), so clients written for A1111 work unchanged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from modules.sumi.app import App
from modules.sumi.engine.controlnet.annotators.pose_render import MAX_CANVAS, render_pose
from modules.sumi.engine.controlnet.preprocessors import list_preprocessors
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.controlnet.control_types import control_types
from modules.sumi.services.controlnet.models import NONE
from modules.sumi.services.controlnet.units import decode_image
from modules.sumi.services.images.saving import encode_png_base64

VERSION = 2  # the extension's API version number


class DetectRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    controlnet_module: str = "none"
    controlnet_input_images: list[str] = Field(default_factory=list)
    controlnet_masks: list[str] = Field(default_factory=list)
    controlnet_processor_res: float = -1
    controlnet_threshold_a: float = -1
    controlnet_threshold_b: float = -1
    low_vram: bool = False


class PosePerson(BaseModel):
    """One person of an OpenPose JSON: flat (x, y, confidence) triples."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    pose_keypoints_2d: list[float]
    hand_right_keypoints_2d: list[float] | None = None
    hand_left_keypoints_2d: list[float] | None = None
    face_keypoints_2d: list[float] | None = None


class PoseData(BaseModel):
    """One pose to draw (what `/controlnet/detect` returns under `poses`, or the openpose editor saves)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    people: list[PosePerson]
    canvas_width: int
    canvas_height: int
    animals: list[list[float]] = Field(default_factory=list)


def create_controlnet_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/controlnet")

    @router.get("/version")
    def version() -> dict[str, int]:
        return {"version": VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict[str, list[str]]:
        if update:
            app.controlnet.models.refresh()
        return {"model_list": [f.name for f in app.controlnet.models.list()]}

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict[str, Any]:
        preprocessors = list_preprocessors()
        names = [p.label if alias_names else p.name for p in preprocessors]
        return {"module_list": names, "module_detail": {p.name: _detail(p) for p in preprocessors}}

    @router.get("/control_types")
    def control_types_route() -> dict[str, Any]:
        names = [NONE, *(f.name for f in app.controlnet.models.list())]
        return {"control_types": control_types(names)}

    @router.get("/settings")
    def settings() -> dict[str, int]:
        return {"control_net_unit_count": int(app.options.control_net_unit_count)}

    @router.post("/detect")
    def detect(req: DetectRequest) -> dict[str, Any]:
        if not req.controlnet_input_images:
            raise InvalidRequestError("No image selected: send controlnet_input_images (base64)")
        images = [
            decode_image(text, f"controlnet_input_images[{i}]")
            for i, text in enumerate(req.controlnet_input_images)
        ]
        found = app.controlnet.detect(
            req.controlnet_module,
            images,
            req.controlnet_processor_res,
            req.controlnet_threshold_a,
            req.controlnet_threshold_b,
        )
        response: dict[str, Any] = {"info": "Success"}
        if any(d.pose is not None for d in found):  # OpenPose: the people read, as the extension
            response["poses"] = [d.pose for d in found]
        response["images"] = [encode_png_base64(Image.fromarray(d.map)) for d in found]
        return response

    @router.post("/render_openpose_json")
    def render_openpose_json(pose_data: list[PoseData] = Body(default_factory=list)) -> dict[str, Any]:
        if not pose_data:
            return {"info": "No pose data detected."}
        area = sum(max(p.canvas_width, 0) * max(p.canvas_height, 0) for p in pose_data)
        if area > MAX_CANVAS * MAX_CANVAS:
            raise InvalidRequestError(
                f"At most {MAX_CANVAS}x{MAX_CANVAS} pixels of canvas per request; got {area}"
            )
        pictures = [render_pose(p.model_dump(), f"pose_data[{i}]") for i, p in enumerate(pose_data)]
        return {"images": [encode_png_base64(Image.fromarray(p)) for p in pictures], "info": "Success"}

    return router


def _detail(preprocessor) -> dict[str, Any]:
    """What the extension's `module_detail` says about a preprocessor's sliders."""
    sliders = []
    for slider in (preprocessor.resolution, preprocessor.threshold_a, preprocessor.threshold_b):
        if slider is not None:
            sliders.append(
                {
                    "name": slider.label,
                    "value": slider.default,
                    "min": slider.minimum,
                    "max": slider.maximum,
                    "step": slider.step,
                }
            )
    return {
        "model_free": preprocessor.model_free,
        "sliders": sliders,
        "label": preprocessor.label,
        "annotator_files": [f.path for f in preprocessor.annotator_files],
    }
