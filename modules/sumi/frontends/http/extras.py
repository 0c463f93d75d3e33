"""A1111's Extras routes: `POST /sdapi/v1/extra-single-image` and `/extra-batch-images`.

The request's fields map to the Extras scripts' arguments by script name, as A1111's `run_extras`
does ("Upscale", "GFPGAN", "CodeFormer"); any other Extras script (an extension's) runs with its
controls' defaults. An unknown upscaler is a 400 naming the choices; a face restoration visibility
above 0 with no such restorer installed is a 400 (A1111 would fail or silently skip it). As in A1111,
the API does not save files. `upscale_first` decides whether faces are restored before or after the
upscale when a face restorer is used; `show_extras_results: false` returns the info without images.
Sumi adds `scripts`: the other Extras scripts' arguments by name (the dataset preparation scripts,
Caption, extensions' scripts), checked against their controls.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from modules.sumi.app import App
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import SaveSettings, encode_api_image
from modules.sumi.services.postprocessing.a1111_args import run_extras_scripts_args, run_order
from modules.sumi.services.postprocessing.named_args import checked_script_args
from modules.sumi.services.postprocessing.service import BATCH, SINGLE, BatchImage, ExtrasRequest
from modules.sumi.services.settings import limits
from modules.sumi.util.b64images import decode_base64_image

_ImageText = Annotated[str, StringConstraints(max_length=limits.BASE64_IMAGE_CEILING)]
_Name = Annotated[str, StringConstraints(max_length=1024)]


class ExtrasBaseRequest(BaseModel):
    """A1111's fields, names and defaults; bounds stated in the schema."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    resize_mode: Literal[0, 1] = Field(
        default=0,
        description="0: upscale by upscaling_resize; 1: upscale to upscaling_resize_w x upscaling_resize_h",
    )
    show_extras_results: StrictBool = Field(
        default=True, description="false: return the info only, no images"
    )
    gfpgan_visibility: float = Field(default=0, ge=0, le=1, description="GFPGAN visibility (0 = off)")
    codeformer_visibility: float = Field(default=0, ge=0, le=1, description="CodeFormer visibility (0 = off)")
    codeformer_weight: float = Field(default=0, ge=0, le=1, description="CodeFormer weight (0 = strongest)")
    upscaling_resize: float = Field(default=2, gt=0, le=8, description="the factor, with resize_mode 0")
    upscaling_resize_w: int = Field(
        default=512, ge=1, le=8192, description="target width, with resize_mode 1"
    )
    upscaling_resize_h: int = Field(
        default=512, ge=1, le=8192, description="target height, with resize_mode 1"
    )
    upscaling_crop: StrictBool = Field(default=True, description="crop to the target size (resize_mode 1)")
    upscaler_1: _Name = Field(
        default="None", description="an upscaler name (GET /sdapi/v1/upscalers); None: no upscale"
    )
    upscaler_2: _Name = Field(default="None", description="a second upscaler, blended in")
    extras_upscaler_2_visibility: float = Field(default=0, ge=0, le=1, description="upscaler 2's weight")
    upscale_first: StrictBool = Field(
        default=False, description="upscale before restoring faces (when a face restorer is used)"
    )
    scripts: dict[_Name, dict[_Name, Any]] = Field(
        default_factory=dict,
        description="Sumi: the other Extras scripts' arguments, by script name and by the argument names "
        'their ui() returns, e.g. {"Split oversized images": {"enable": true, "split_threshold": 0.5}}; '
        "scripts not named run with their controls' defaults (A1111's API has no way to set them)",
    )


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: _ImageText = Field(default="", description="the image, base64")


class FileData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: _ImageText = Field(description="the image, base64")
    name: _Name = Field(description="its file name (named in error messages)")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    imageList: list[FileData] = Field(description="the images")  # noqa: N815 (A1111's name)


class ExtraBaseResponse(BaseModel):
    html_info: str


class ExtrasSingleImageResponse(ExtraBaseResponse):
    image: str | None = None


class ExtrasBatchImagesResponse(ExtraBaseResponse):
    images: list[str]


def _layout():
    """A page that is never shown, for the scripts' `ui()` on API-only servers."""
    import gradio as gr

    return gr.Blocks()


def scripts_args(app: App, req: ExtrasBaseRequest) -> tuple[list[Any], list[str] | None]:
    """The scripts' flat argument list for a request (A1111's `run_extras` mapping) and the run order
    (None: the configured one)."""
    runner = app.scripts.postproc
    runner.ensure_ui(_layout)
    for name in (req.upscaler_1, req.upscaler_2):
        app.upscalers.find(name)  # InvalidRequestError naming the choices
    available = {s.name for s in runner.scripts_in_preferred_order()}
    for script, visibility in (("GFPGAN", req.gfpgan_visibility), ("CodeFormer", req.codeformer_visibility)):
        if visibility > 0 and script not in available:
            raise InvalidRequestError(
                f"{script.lower()}_visibility is {visibility:g} but {script} face restoration is not available "
                f"on this server (put its weights in models/{script if script == 'GFPGAN' else 'Codeformer'}, "
                "or send 0)"
            )
    named = run_extras_scripts_args(
        resize_mode=req.resize_mode,
        gfpgan_visibility=req.gfpgan_visibility,
        codeformer_visibility=req.codeformer_visibility,
        codeformer_weight=req.codeformer_weight,
        upscaling_resize=req.upscaling_resize,
        upscaling_resize_w=req.upscaling_resize_w,
        upscaling_resize_h=req.upscaling_resize_h,
        upscaling_crop=req.upscaling_crop,
        extras_upscaler_1=req.upscaler_1,
        extras_upscaler_2=req.upscaler_2,
        extras_upscaler_2_visibility=req.extras_upscaler_2_visibility,
    )
    named.update(checked_script_args(runner, req.scripts, reserved=named))
    if named.get("Caption", {}).get("enable"):
        raise InvalidRequestError(
            "scripts: Caption writes .txt files beside saved pictures and the API saves none; "
            "POST /sdapi/v1/interrogate gives a picture's caption"
        )
    args = runner.create_args_for_run(named, _layout)
    return args, run_order(req.upscale_first, req.gfpgan_visibility > 0 or req.codeformer_visibility > 0)


def _decoded(text: str, what: str):
    try:
        return decode_base64_image(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{what}: {exc}") from exc


def _encoded(app: App, image) -> str:
    """Base64 in opt `samples_format` as A1111 (a PNG keeps the image's text chunks: its original
    parameters and `postprocessing`)."""
    o = app.options
    return encode_api_image(image, None, str(o.samples_format), SaveSettings.from_options(o), image.info)


def create_extras_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse)
    def extra_single_image(req: ExtrasSingleImageRequest) -> ExtrasSingleImageResponse:
        image = _decoded(req.image, "image")
        args, order = scripts_args(app, req)
        result = app.extras.run(ExtrasRequest(mode=SINGLE, image=image, args=args, order=order, save=False))
        shown = _encoded(app, result.images[0]) if req.show_extras_results and result.images else None
        return ExtrasSingleImageResponse(html_info=result.html_info, image=shown)

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse)
    def extra_batch_images(req: ExtrasBatchImagesRequest) -> ExtrasBatchImagesResponse:
        if not req.imageList:
            raise InvalidRequestError("imageList is empty: send at least one {data, name} image")
        images = [
            BatchImage(_decoded(item.data, f"imageList[{i}] ({item.name})"), item.name)
            for i, item in enumerate(req.imageList)
        ]
        args, order = scripts_args(app, req)
        result = app.extras.run(ExtrasRequest(mode=BATCH, images=images, args=args, order=order, save=False))
        shown = [_encoded(app, image) for image in result.images] if req.show_extras_results else []
        return ExtrasBatchImagesResponse(html_info=result.html_info, images=shown)

    return router
