"""The A1111 HTTP API (`/sdapi/v1/...`) over the App's services.

Every generation goes through the App's single job queue, shared with the web UI. Errors a user can
fix come back as 4xx with A1111's JSON error shape; the server keeps serving.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request

from modules.sumi.app import App
from modules.sumi.engine.accel import memory as memory_report
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES
from modules.sumi.frontends.http import errors, openapi
from modules.sumi.frontends.http import models as m
from modules.sumi.frontends.http.controlnet import create_controlnet_router
from modules.sumi.frontends.http.extras import create_extras_router
from modules.sumi.frontends.http.interrogate import create_interrogate_router
from modules.sumi.frontends.http.merger import create_merger_router
from modules.sumi.frontends.http.server_control import add_server_control_routes
from modules.sumi.frontends.http.training import create_training_router
from modules.sumi.frontends.http.training_controlnet import create_training_controlnet_router
from modules.sumi.frontends.http.training_finetune import create_training_finetune_router
from modules.sumi.frontends.http.training_lora import create_training_lora_router
from modules.sumi.frontends.http.training_runs import create_training_runs_router
from modules.sumi.services.controlnet.units import SCRIPT_TITLE, units_from_alwayson
from modules.sumi.services.images.saving import (
    SaveSettings,
    encode_api_image,
    read_infotext_from_image,
)
from modules.sumi.services.jobs import infotext_request, refiner
from modules.sumi.services.jobs.ignored_fields import unknown_fields_warning
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from modules.sumi.services.settings.secrets import (
    redacted_flags,
    redacted_options,
    without_masked,
    without_userinfo,
)
from modules.sumi.util.b64images import decode_base64_image

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY_MB = 64

_P_FIELDS = {f.name for f in dataclasses.fields(StableDiffusionProcessingTxt2Img) if f.init} - set(
    m._ApiOnly.model_fields
)
_I2I_FIELDS = {f.name for f in dataclasses.fields(StableDiffusionProcessingImg2Img) if f.init} - set(
    m._Img2ImgApiOnly.model_fields
)


def protect(fastapi_app: FastAPI, app: App) -> None:
    """What every server gets, with or without --api: A1111's JSON errors with a status by exception
    class, no bare 500, one traceback per error, and the request body limit (`errors.py`), all stated in
    the OpenAPI schema (`openapi.py`)."""
    limit_mb = getattr(app.args, "max_request_body_mb", DEFAULT_MAX_BODY_MB)
    errors.install(fastapi_app, int(float(limit_mb) * 1024 * 1024))
    openapi.document_errors(fastapi_app)


def processing_from_request(req: m.Txt2ImgRequest) -> StableDiffusionProcessingTxt2Img:
    """The job for a request; fields sent as null take the processing object's defaults."""
    values = {k: v for k, v in req.model_dump().items() if k in _P_FIELDS and v is not None}
    values["sampler_name"] = req.sampler_name or req.sampler_index
    if not req.save_images:
        values["do_not_save_samples"] = values["do_not_save_grid"] = True
    values["controlnet_units"] = units_from_alwayson(req.alwayson_scripts)
    if req.firstpass_image:  # A1111: a finished first pass; only the hires pass runs on it
        values["firstpass_image"] = _decoded(req.firstpass_image, "firstpass_image")
    p = StableDiffusionProcessingTxt2Img(**values)
    refiner.apply_script_args(p, req.alwayson_scripts)
    return p


def img2img_from_request(req: m.Img2ImgRequest) -> StableDiffusionProcessingImg2Img:
    """The img2img job for a request: its base64 init images and mask decoded (a 400 for one that is not
    a readable image or is over 64 megapixels); fields sent as null take the defaults."""
    values = {k: v for k, v in req.model_dump().items() if k in _I2I_FIELDS and v is not None}
    values["sampler_name"] = req.sampler_name or req.sampler_index
    if not req.init_images:
        raise InvalidRequestError("Init image not found: init_images must hold at least one base64 image")
    values["init_images"] = [_decoded(text, f"init_images[{i}]") for i, text in enumerate(req.init_images)]
    values["mask"] = _decoded(req.mask, "mask") if req.mask else None
    values["latent_mask"] = _decoded(req.latent_mask, "latent_mask") if req.latent_mask else None
    if not req.save_images:
        values["do_not_save_samples"] = values["do_not_save_grid"] = True
    values["controlnet_units"] = units_from_alwayson(req.alwayson_scripts)
    p = StableDiffusionProcessingImg2Img(**values)
    refiner.apply_script_args(p, req.alwayson_scripts)
    return p


def _decoded(text: str, name: str):
    try:
        return decode_base64_image(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{name}: {exc}") from exc


def with_infotext(app: App, req: Any) -> Any:
    """The request with its `infotext` applied (A1111's `apply_infotext`): fields it did not send are
    taken from the infotext, the settings it names go to `override_settings`."""
    if not req.infotext:
        return req
    accepted = set(type(req).model_fields) - {"infotext"}
    update = infotext_request.fields_from_infotext(req.infotext, accepted, req.model_fields_set)
    overrides = dict(req.override_settings or {})
    overrides.update(infotext_request.settings_from_infotext(req.infotext, app.options, overrides))
    update["override_settings"] = overrides
    return req.model_copy(update=update)


def _note_unknown_fields(p: Any, req: Any) -> None:
    p.warnings.extend(unknown_fields_warning(req.model_extra or {}))


def _echo(req: Any) -> dict[str, Any]:
    """The request as A1111 echoes it in `parameters` (known fields only)."""
    return req.model_dump(exclude=set(req.model_extra or {}))


def api_images(app: App, images: list[Any], infotexts: list[str]) -> list[str]:
    """The job's images as A1111's API returns them: base64 in opt `samples_format` (png, jpg or
    webp; with opts `jpeg_quality` and `webp_lossless`), each with its infotext."""
    o = app.options
    settings = SaveSettings.from_options(o)
    return [
        encode_api_image(image, info, str(o.samples_format), settings)
        for image, info in zip(images, infotexts, strict=True)
    ]


def run_img2img(app: App, req: m.Img2ImgRequest) -> m.ImagesResponse:
    """What POST /sdapi/v1/img2img does: the img2img job with the img2img tab's scripts, queued, and its
    images as base64 (the request echoed without its images unless `include_init_images`)."""
    req = with_infotext(app, req)
    p = img2img_from_request(req)
    _note_unknown_fields(p, req)
    runner = app.scripts.ensure_inputs(_script_layout, tab="img2img")
    p.scripts, p.is_api = runner, True
    p.script_args = runner.script_args_for(
        req.script_name, req.script_args, req.alwayson_scripts, skip=(SCRIPT_TITLE, refiner.SCRIPT_TITLE)
    )
    p.warnings.extend(p.script_args.surplus)
    processed = app.runner.img2img(p, job_id=req.force_task_id or None)
    images = api_images(app, processed.images, processed.infotexts) if req.send_images else []
    parameters = _echo(req)
    if not req.include_init_images:
        parameters["init_images"] = parameters["mask"] = parameters["latent_mask"] = None
    return m.ImagesResponse(images=images, parameters=parameters, info=processed.js())


def create_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")  # the login is checked for every route by guard.AccessGuard
    for add_routes in (
        _network_routes,
        _generation_routes,
        _model_routes,
        _face_routes,
        _sampler_routes,
        _upscaler_routes,
        _settings_routes,
        _progress_routes,
        _info_routes,
        _script_routes,
        add_server_control_routes,
    ):
        add_routes(router, app)
    return router


def _network_routes(router: APIRouter, app: App) -> None:
    @router.get("/loras")
    def loras() -> list[dict[str, Any]]:
        return [
            {"name": i.name, "alias": i.alias, "path": str(i.path), "metadata": i.metadata}
            for i in app.loras.list()
        ]

    @router.post("/refresh-loras")
    def refresh_loras() -> dict:
        app.loras.refresh()
        return {}

    @router.get("/embeddings")
    def embeddings() -> dict[str, Any]:
        app.embeddings.refresh()
        active = app.models.active
        if active is None:
            return {"loaded": {}, "skipped": {}}
        return app.embeddings.for_model(active.sd).api_payload()

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> dict:
        app.embeddings.refresh()
        return {}

    @router.get("/hypernetworks")
    def hypernetworks() -> list[dict[str, str]]:
        return [{"name": i.name, "path": str(i.path)} for i in app.hypernetworks.refresh()]

    @router.post("/refresh-hypernetworks")
    def refresh_hypernetworks() -> dict:
        app.hypernetworks.refresh()
        return {}


def run_txt2img(app: App, req: m.Txt2ImgRequest) -> m.ImagesResponse:
    """What POST /sdapi/v1/txt2img does: the job with its scripts, queued, and its images as base64."""
    req = with_infotext(app, req)
    p = processing_from_request(req)
    _note_unknown_fields(p, req)
    runner = app.scripts.ensure_inputs(_script_layout)
    p.scripts, p.is_api = runner, True
    p.script_args = runner.script_args_for(
        req.script_name, req.script_args, req.alwayson_scripts, skip=(SCRIPT_TITLE, refiner.SCRIPT_TITLE)
    )
    p.warnings.extend(p.script_args.surplus)
    processed = app.runner.txt2img(p, job_id=req.force_task_id or None)
    images = api_images(app, processed.images, processed.infotexts) if req.send_images else []
    return m.ImagesResponse(images=images, parameters=_echo(req), info=processed.js())


def _generation_routes(router: APIRouter, app: App) -> None:
    @router.post("/txt2img", response_model=m.ImagesResponse)
    def txt2img(req: m.Txt2ImgRequest) -> m.ImagesResponse:
        return run_txt2img(app, req)

    @router.post("/img2img", response_model=m.ImagesResponse)
    def img2img(req: m.Img2ImgRequest) -> m.ImagesResponse:
        return run_img2img(app, req)


def _model_routes(router: APIRouter, app: App) -> None:
    @router.get("/sd-models", response_model=list[m.SDModelItem])
    def sd_models() -> list[m.SDModelItem]:
        return [
            m.SDModelItem(
                title=c.title,
                model_name=c.model_name,
                hash=c.hash,
                sha256=c.sha256,
                filename=str(c.filename),
                config=_str_or_none(app.checkpoints.config_yaml_for(c)),
            )
            for c in app.checkpoints.list()
        ]

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> dict:
        app.models.refresh()
        return {}

    @router.post("/unload-checkpoint")
    def unload_checkpoint() -> dict:
        """A1111's: the active model leaves the GPU (parked in RAM, pinned on CUDA; under --medvram or
        --lowvram every part goes back to RAM). The next job, or reload-checkpoint, brings it back."""
        app.models.offload()
        return {}

    @router.post("/reload-checkpoint")
    def reload_checkpoint() -> dict:
        """A1111's: the selected checkpoint back on the GPU; loaded from its file if nothing is loaded."""
        app.models.load()
        return {}

    @router.get("/sd-vae", response_model=list[m.VaeItem])
    def sd_vae() -> list[m.VaeItem]:
        return [m.VaeItem(model_name=name, filename=str(path)) for name, path in app.vaes.files().items()]

    @router.post("/refresh-vae")
    def refresh_vae() -> dict:
        app.vaes.refresh()
        return {}


def _face_routes(router: APIRouter, app: App) -> None:
    @router.get("/face-restorers", response_model=list[m.FaceRestorerItem])
    def face_restorers() -> list[m.FaceRestorerItem]:
        """The restorers whose weights are installed (GFPGAN: models/GFPGAN, CodeFormer: models/Codeformer)."""
        return [m.FaceRestorerItem(name=e.name, cmd_dir=str(e.folder)) for e in app.faces.entries()]


def _sampler_routes(router: APIRouter, app: App) -> None:
    @router.get("/samplers", response_model=list[m.SamplerItem])
    def samplers() -> list[m.SamplerItem]:
        return [m.SamplerItem(name=s.name, aliases=list(s.aliases), options=s.options) for s in SAMPLERS]

    @router.get("/schedulers", response_model=list[m.SchedulerItem])
    def schedulers() -> list[m.SchedulerItem]:
        return [
            m.SchedulerItem(
                name=t.name,
                label=t.label,
                aliases=list(t.aliases) or None,
                default_rho=t.default_rho,
                need_inner_model=t.need_inner_model,
            )
            for t in SCHEDULE_TYPES
        ]


def _upscaler_routes(router: APIRouter, app: App) -> None:
    @router.get("/upscalers", response_model=list[m.UpscalerItem])
    def upscalers() -> list[m.UpscalerItem]:
        """A1111's list: None, Lanczos, Nearest, then the model files (no URLs: Sumi never downloads);
        files added since the last look are picked up."""
        app.upscalers.rescan()
        return [
            m.UpscalerItem(
                name=e.name,
                model_name=e.folder,
                model_path=str(e.path) if e.path else None,
                model_url=None,
                scale=e.scale,
            )
            for e in app.upscalers.entries()
        ]

    @router.get("/latent-upscale-modes", response_model=list[m.LatentUpscalerModeItem])
    def latent_upscale_modes() -> list[m.LatentUpscalerModeItem]:
        return [m.LatentUpscalerModeItem(name=name) for name in app.upscalers.latent_modes()]

    @router.get("/realesrgan-models", response_model=list[m.RealesrganItem])
    def realesrgan_models() -> list[m.RealesrganItem]:
        """The Real-ESRGAN files present in models/RealESRGAN (A1111 lists its download URLs too)."""
        app.upscalers.rescan()
        return [
            m.RealesrganItem(name=e.name, path=str(e.path), scale=int(e.scale))
            for e in app.upscalers.model_entries()
            if e.folder == "RealESRGAN"
        ]


def _settings_routes(router: APIRouter, app: App) -> None:
    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return redacted_options(app.options.as_dict())

    @router.post("/options")
    def set_options(values: dict[str, Any]) -> dict:
        app.settings.set(without_masked(values), is_api=True)
        return {}

    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        # A1111's flags, plus what Sumi chose from them (precision, layout; key `sumi_precision`)
        return {**redacted_flags(vars(app.args)), "sumi_precision": app.precision_summary()}


def _progress_routes(router: APIRouter, app: App) -> None:
    @router.get("/progress", response_model=m.ProgressResponse)
    def progress(skip_current_image: bool = False) -> m.ProgressResponse:
        return progress_response(app, with_image=not skip_current_image)

    @router.post("/interrupt")
    def interrupt() -> dict:
        app.state.interrupt()
        return {}

    @router.post("/skip")
    def skip() -> dict:
        app.state.skip()
        return {}


def _info_routes(router: APIRouter, app: App) -> None:
    @router.post("/png-info", response_model=m.PngInfoResponse)
    def png_info(req: m.PngInfoRequest) -> m.PngInfoResponse:
        try:
            image = decode_base64_image(req.image)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        info = read_infotext_from_image(image) or ""
        items = {
            k: v
            for k, v in image.info.items()
            if isinstance(k, str) and isinstance(v, str) and k != "parameters"
        }
        return m.PngInfoResponse(info=info, items=items, parameters=parse_infotext(info) if info else {})

    @router.get("/prompt-styles")
    def prompt_styles() -> list[dict[str, str | None]]:
        return [
            {"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
            for s in list(app.styles.styles.values())
        ]

    @router.get("/memory")
    def memory() -> dict[str, Any]:
        """A1111's MemoryResponse: ram {free, used, total} (Sumi adds the process's RSS and its peak),
        cuda {system, active, allocated, reserved, inactive, events}, or {"error": ...} for either."""
        return memory_report.report()


def _script_layout():
    """A page that is never shown, for scripts whose `ui()` builds rows and groups (API-only servers)."""
    import gradio as gr

    return gr.Blocks()


# `alwayson_scripts` keys Sumi runs natively rather than as Script objects (A1111's script names, lowercase)
BUILT_IN_ALWAYSON = (SCRIPT_TITLE, refiner.SCRIPT_TITLE)


def _script_routes(router: APIRouter, app: App) -> None:
    @router.get("/scripts")
    def scripts() -> dict[str, list[str]]:
        """A1111's lists (every script with a name, always-on ones included), then the always-on scripts
        Sumi has built in that A1111 lists too (the ControlNet extension's, A1111's Refiner): clients
        look for "controlnet" here before they send `alwayson_scripts.controlnet`."""
        tabs = ("txt2img", "img2img")
        runners = {tab: app.scripts.ensure_inputs(_script_layout, tab=tab) for tab in tabs}
        listed = {tab: [s.name for s in runner.scripts if s.name] for tab, runner in runners.items()}
        return {
            tab: names + [b for b in BUILT_IN_ALWAYSON if b not in names] for tab, names in listed.items()
        }

    @router.get("/extensions")
    def extensions() -> list[dict[str, Any]]:
        """A1111's ExtensionItem fields, plus Sumi's `conflicts`: the core package versions the
        extension asked for and did not get ({package, asked, kept, source})."""
        conflicts: dict[str, list[dict[str, str]]] = {}
        for c in app.extensions.conflicts():
            conflicts.setdefault(c.extension, []).append(
                {"package": c.package, "asked": c.asked, "kept": c.kept, "source": c.source}
            )
        return [
            {
                "name": e.name,
                "remote": without_userinfo(e.remote),
                "branch": e.branch,
                "commit_hash": e.commit_hash,
                "version": e.version,
                "commit_date": e.commit_date,
                "enabled": e.enabled,
                "conflicts": conflicts.get(e.name, []),
            }
            for e in app.extensions.list(with_repo_info=True)
        ]

    @router.get("/notices")
    def notices() -> dict[str, list[str]]:
        """Sumi: what went wrong at start-up (the notices above the UI's tabs): extension install
        failures and package conflicts, optional packages kept away, flags that do nothing, ..."""
        return {"notices": list(app.notices)}

    @router.get("/script-info")
    def script_info() -> list[dict[str, Any]]:
        runners = [app.scripts.ensure_inputs(_script_layout, tab=tab) for tab in ("txt2img", "img2img")]
        return [_script_info(s, r.inputs) for r in runners for s in r.scripts if s.name]


def _script_info(script, inputs: list[Any]) -> dict[str, Any]:
    """A1111's ScriptInfo: the script's name and its controls' labels, defaults and ranges."""
    args = []
    for control in inputs[script.args_from : script.args_to]:
        choices = getattr(control, "choices", None)
        args.append(
            {
                "label": getattr(control, "label", None),
                "value": getattr(control, "value", None),
                "minimum": getattr(control, "minimum", None),
                "maximum": getattr(control, "maximum", None),
                "step": getattr(control, "step", None),
                "choices": [c[0] if isinstance(c, (list, tuple)) else c for c in choices]
                if choices
                else None,
            }
        )
    return {
        "name": script.name,
        "is_alwayson": bool(script.alwayson),
        "is_img2img": bool(script.is_img2img),
        "args": args,
    }


def progress_response(app: App, with_image: bool = True) -> m.ProgressResponse:
    snap = app.state.snapshot()
    image = None
    if with_image and snap.preview is not None:
        image = encode_api_image(
            snap.preview, None, str(app.options.samples_format), SaveSettings.from_options(app.options)
        )  # A1111: in opt samples_format, as the job's images
    state = m.ProgressState(
        skipped=snap.skipped,
        interrupted=snap.interrupted,
        job=snap.job,
        job_count=snap.job_count,
        job_timestamp=snap.job_timestamp,
        job_no=snap.job_no,
        sampling_step=snap.sampling_step,
        sampling_steps=snap.sampling_steps,
    )
    current = app.queue.current.id if app.queue.current else None
    return m.ProgressResponse(
        progress=snap.progress,
        eta_relative=snap.eta_relative,
        state=state,
        current_image=image,
        textinfo=snap.textinfo,
        current_task=current,
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def mount(fastapi_app: FastAPI, app: App) -> None:
    fastapi_app.include_router(create_router(app))
    fastapi_app.include_router(create_controlnet_router(app))
    fastapi_app.include_router(create_training_runs_router(app))
    fastapi_app.include_router(create_extras_router(app))
    fastapi_app.include_router(create_interrogate_router(app))
    fastapi_app.include_router(create_training_router(app))
    fastapi_app.include_router(create_training_lora_router(app))
    fastapi_app.include_router(create_merger_router(app))
    fastapi_app.include_router(create_training_controlnet_router(app))
    fastapi_app.include_router(create_training_finetune_router(app))

    if getattr(app.args, "api_log", False):

        @fastapi_app.middleware("http")
        async def log_requests(request: Request, call_next):
            start = time.perf_counter()
            response = await call_next(request)
            log.info(
                "API %s %s -> %s in %.3fs",
                request.method,
                request.url.path,
                response.status_code,
                time.perf_counter() - start,
            )
            return response
