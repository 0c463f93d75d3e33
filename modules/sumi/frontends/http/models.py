"""Request and response bodies of the A1111 HTTP API (`/sdapi/v1/...`), as pydantic models."""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import annotated_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    create_model,
)

from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from modules.sumi.services.settings import limits

# Fields of the processing object that the job fills in; they are not part of a request.
_RUNTIME_FIELDS = {
    "sd_model",
    "outpath_samples",
    "outpath_grids",
    "all_prompts",
    "all_negative_prompts",
    "all_seeds",
    "all_subseeds",
    "iteration",
    "clip_skip",
    "job_timestamp",
    "sd_model_name",
    "sd_model_hash",
    "sd_vae_name",
    "sd_vae_hash",
    "warnings",
    "sampler_index",
    "script_args",
    "controlnet_units",
    "controlnet_batch_index",
    "engine_extensions",
    "vae_tiling",
    "scripts",
    "prompts",
    "negative_prompts",
    "seeds",
    "subseeds",
    "extra_network_data",
    "sampler",
    "all_hr_prompts",
    "all_hr_negative_prompts",
    "image_mask",
    "overlay_images",
    "do_not_reload_embeddings",  # A1111's API_NOT_ALLOWED: for scripts, not API clients
    "prompt_for_display",
    "ddim_discretize",  # in API_NOT_ALLOWED too (A1111 1.6+ reads it nowhere)
}


def _number_not_text_or_bool(value: Any) -> Any:
    """JSON numbers only: pydantic would read `true` as 1 and "12" as 12, values the schema forbids."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"must be a number, not {type(value).__name__} {value!r}")
    return value


_EXACT_BOOL = {bool: StrictBool}
_NUMBERS = (int, float)


def _exact(hint: Any, constraints: dict[str, Any]) -> Any:
    """`hint` with ints, floats and bools taking only JSON values of that type (inside unions too);
    `constraints` (ge, le, multiple_of) bound the numbers."""
    if hint in _NUMBERS:
        bounds: list[Any] = [annotated_types.Interval(ge=constraints.get("ge"), le=constraints.get("le"))]
        if "multiple_of" in constraints:
            bounds.append(annotated_types.MultipleOf(constraints["multiple_of"]))
        return Annotated[(hint, *bounds, BeforeValidator(_number_not_text_or_bool))]
    if hint in _EXACT_BOOL:
        return _EXACT_BOOL[hint]
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return functools.reduce(operator.or_, [_exact(a, constraints) for a in args])
    return hint


class _V1Config:
    """What pydantic 1 (A1111 1.10's) put on every model as `Model.__config__`. Extensions subclass it
    (`class Config(StableDiffusionTxt2ImgProcessingAPI.__config__): ...`, agent-scheduler); pydantic 2
    reads such a class-based Config with a deprecation warning, so the same keys as `model_config`."""

    extra = "allow"
    allow_inf_nan = False


class _ApiOnly(BaseModel):
    """Request fields the API adds to the processing object's own (A1111's names and defaults)."""

    # Unknown keys are kept aside (`model_extra`), never used: the API names them in a warning.
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    __config__: ClassVar[type] = _V1Config

    sampler_index: str = "Euler"
    script_name: str | None = None
    script_args: list[Any] = Field(default_factory=list)
    send_images: StrictBool = True
    save_images: StrictBool = False
    alwayson_scripts: dict[str, Any] = Field(default_factory=dict)
    force_task_id: str | None = None
    infotext: str | None = None


_SETTING = "; the live limit is the {} setting"
_SIDE = {
    "ge": limits.MIN_IMAGE_SIDE,
    "le": limits.IMAGE_SIDE_CEILING,
    "description": "pixels; not a multiple of 8: rounded down to one, as A1111 (the job warns)"
    + _SETTING.format("max_image_size"),
}
_SEED = {"ge": -1, "le": limits.MAX_SEED, "description": "-1: a random seed"}
_SEED_RESIZE = {
    "ge": -1,
    "le": limits.IMAGE_SIDE_CEILING,
    "description": "0 or -1: off" + _SETTING.format("max_image_size"),
}
_UNIT = {"ge": 0.0, "le": 1.0}
_MASK_BLUR = {"ge": 0, "le": 512, "description": "pixels (the Gaussian's sigma)"}

# Bounds the schema states (issue 11): a request outside them is a 422 before anything runs; the
# live limits (settings) are checked again for every job, whoever submits it (400).
FIELD_BOUNDS: dict[str, dict[str, Any]] = {
    "seed": _SEED,
    "subseed": _SEED,
    "subseed_strength": _UNIT,
    "seed_resize_from_w": _SEED_RESIZE,
    "seed_resize_from_h": _SEED_RESIZE,
    "width": _SIDE,
    "height": _SIDE,
    "steps": {"ge": 1, "le": limits.STEPS_CEILING, "description": _SETTING.format("max_steps")[2:]},
    "batch_size": {
        "ge": 1,
        "le": limits.BATCH_SIZE_CEILING,
        "description": _SETTING.format("max_batch_size")[2:],
    },
    "n_iter": {
        "ge": 1,
        "le": limits.BATCH_COUNT_CEILING,
        "description": _SETTING.format("max_batch_count")[2:],
    },
    "cfg_scale": {"ge": 0.0, "le": limits.CFG_SCALE_MAX},
    "denoising_strength": _UNIT,
    "refiner_switch_at": _UNIT,
    "hr_second_pass_steps": {"ge": 0, "le": limits.STEPS_CEILING},
    "hr_resize_x": {"ge": 0, "le": limits.IMAGE_SIDE_CEILING},
    "hr_resize_y": {"ge": 0, "le": limits.IMAGE_SIDE_CEILING},
    "firstphase_width": {"ge": 0, "le": limits.IMAGE_SIDE_CEILING},
    "firstphase_height": {"ge": 0, "le": limits.IMAGE_SIDE_CEILING},
    # img2img
    "resize_mode": {
        "ge": 0,
        "le": 3,
        "description": "0 Just resize, 1 Crop and resize, 2 Resize and fill, 3 Just resize (latent upscale)",
    },
    "image_cfg_scale": {"ge": 0.0, "le": limits.CFG_SCALE_MAX},
    "mask_blur": _MASK_BLUR,
    "mask_blur_x": _MASK_BLUR,
    "mask_blur_y": _MASK_BLUR,
    "inpainting_fill": {
        "ge": 0,
        "le": 3,
        "description": "0 fill, 1 original, 2 latent noise, 3 latent nothing",
    },
    "inpaint_full_res_padding": {"ge": 0, "le": limits.IMAGE_SIDE_CEILING},
    "inpainting_mask_invert": {"ge": 0, "le": 1},
    "initial_noise_multiplier": {"ge": 0.0, "le": 10.0},
    # sampler parameters (null: the setting of the same name)
    "s_min_uncond": {"ge": 0.0, "le": 1000.0, "description": "NGMS; 0 off (setting s_min_uncond)"},
    "s_churn": {"ge": 0.0, "le": 1000.0, "description": "Euler, Heun, DPM2: churn; 0 off"},
    "s_tmin": {"ge": 0.0, "le": 1000.0},
    "s_tmax": {"ge": 0.0, "description": "0: no upper bound"},
    "s_noise": {"ge": 0.0, "le": 10.0},
}

_PromptText = Annotated[str, StringConstraints(max_length=limits.PROMPT_LENGTH_CEILING)]
# A base64 image (or data: URL); its decoded size is checked when it is read (64 megapixels).
_ImageText = Annotated[str, StringConstraints(max_length=limits.BASE64_IMAGE_CEILING)]
_PROMPT_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")
_PROMPT_NOTE = "characters at most" + _SETTING.format("max_prompt_length")


def _field_type(name: str, hint: Any, constraints: dict[str, Any]) -> Any:
    if name in _PROMPT_FIELDS:  # str (or, as A1111 accepts, a list of str), each bounded
        return _PromptText if hint is str else (_PromptText | list[_PromptText])
    if name == "init_images":  # img2img: base64 images
        return list[_ImageText]
    if name in ("mask", "firstpass_image", "latent_mask"):  # base64 images
        return _ImageText
    return _exact(hint, constraints)


def _processing_fields(cls: type) -> dict[str, Any]:
    """pydantic field definitions from a processing dataclass, as A1111 derives its API models.

    Every field also accepts null (meaning "the default"), as A1111's generated models do. Fields
    in FIELD_BOUNDS and the prompts carry their bounds, so the OpenAPI schema states them.
    """
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if f.name in _RUNTIME_FIELDS or not f.init:  # A1111 builds its models from __init__'s parameters
            continue
        if f.name in _ApiOnly.model_fields:  # declared by the API's own fields (force_task_id)
            continue
        bounds = dict(FIELD_BOUNDS.get(f.name, {}))
        constraints = {k: bounds.pop(k) for k in ("ge", "le", "multiple_of") if k in bounds}
        if f.name in _PROMPT_FIELDS:
            bounds["description"] = f"{limits.PROMPT_LENGTH_CEILING} {_PROMPT_NOTE}"
        kind = _field_type(f.name, hints[f.name], constraints) | None
        if f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (kind, Field(default_factory=f.default_factory, **bounds))
        else:
            fields[f.name] = (kind, Field(default=f.default, **bounds))
    return fields


class _Img2ImgApiOnly(_ApiOnly):
    include_init_images: StrictBool = False


if TYPE_CHECKING:
    # What type checkers see of the models made below: their fixed fields, and the processing
    # object's fields (added by create_model at runtime) as Any.
    class Txt2ImgRequest(_ApiOnly):
        def __getattr__(self, name: str) -> Any: ...

    class Img2ImgRequest(_Img2ImgApiOnly):
        def __getattr__(self, name: str) -> Any: ...

else:
    Txt2ImgRequest = create_model(
        "StableDiffusionTxt2ImgProcessingAPI",
        __base__=_ApiOnly,
        __doc__="POST /sdapi/v1/txt2img. Unknown fields are ignored, as A1111 does (info.warnings names them).",
        **_processing_fields(StableDiffusionProcessingTxt2Img),
    )

    Img2ImgRequest = create_model(
        "StableDiffusionImg2ImgProcessingAPI",
        __base__=_Img2ImgApiOnly,
        __doc__="POST /sdapi/v1/img2img (init_images, mask and latent_mask as base64 strings). Unknown "
        "fields are ignored, as A1111 does (info.warnings names them).",
        **_processing_fields(StableDiffusionProcessingImg2Img),
    )

# A1111's names for these models (extensions import them, often with `from modules.api.models import *`).
StableDiffusionTxt2ImgProcessingAPI = Txt2ImgRequest
StableDiffusionImg2ImgProcessingAPI = Img2ImgRequest


class ImagesResponse(BaseModel):
    images: list[str] | None = None
    parameters: dict[str, Any]
    info: str


class ProgressState(BaseModel):
    skipped: bool
    interrupted: bool
    stopping_generation: bool = False
    job: str
    job_count: int
    job_timestamp: str
    job_no: int
    sampling_step: int
    sampling_steps: int


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: ProgressState
    current_image: str | None = None
    textinfo: str | None = None
    current_task: str | None = None


class SDModelItem(BaseModel):
    title: str
    model_name: str
    hash: str | None = None
    sha256: str | None = None
    filename: str
    config: str | None = None


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None = None
    default_rho: float = -1
    need_inner_model: bool = False


class UpscalerItem(BaseModel):
    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class LatentUpscalerModeItem(BaseModel):
    name: str


class RealesrganItem(BaseModel):
    name: str
    path: str | None = None
    scale: int | None = None


class FaceRestorerItem(BaseModel):
    name: str = Field(title="Name")
    cmd_dir: str | None = Field(default=None, title="Path")


class VaeItem(BaseModel):
    model_name: str
    filename: str


class PngInfoRequest(BaseModel):
    image: str


class PngInfoResponse(BaseModel):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


TextToImageResponse = ImageToImageResponse = ImagesResponse
PNGInfoRequest, PNGInfoResponse = PngInfoRequest, PngInfoResponse
