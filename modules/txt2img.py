"""A1111's `modules.txt2img`: the txt2img tab's submit functions with A1111 1.10's arguments, which
extensions call (agent-scheduler replays a queued task through `txt2img`, reading the argument names
of `txt2img_create_processing`) or wrap. They run on the running App's job runner, like the tab and
the API.

Sumi's txt2img tab has its own handler (`modules.sumi.frontends.gradio.txt2img`) and does not go
through `txt2img`: wrapping it changes what callers of `modules.txt2img.txt2img` get, not the tab
(as for `modules.img2img.img2img`).

`*args` are the txt2img script runner's arguments (`scripts.scripts_txt2img`: `args[0]` the selected
script, 1-based, then every script's slice). A1111 1.10 takes steps, sampler, scheduler and seeds from
its built-in "Sampler" and "Seed" always-on scripts' slices; Sumi has no such scripts, so the job keeps
`StableDiffusionProcessingTxt2Img`'s defaults for them, or the values given as keyword arguments
(Sumi's addition: any field of the job by A1111's name, e.g. `steps=20, sampler_name="Euler a", seed=1`).

The values of the tab's Generate as Gradio 3 code finds it in `demo.dependencies` (A1111's arguments,
the script args, then a marker and the tab's other values: `modules.sumi.frontends.gradio.a1111_generate`)
make the job the tab's Generate makes from them, with those sampler, steps, seeds and ControlNet units:
agent-scheduler's Enqueue replays them here.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

from modules import shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.frontends.gradio.a1111_generate import TXT2IMG_ARGS, split_tab_values, txt2img_job
from modules.sumi.frontends.gradio.a1111_submit import (
    check_job_fields,
    plaintext_to_html,
    tab_outputs,
    with_scripts,
)
from modules.sumi.frontends.gradio.hires_ui import replaced, upscale_job
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

TXT2IMG_NAMES = frozenset(name for name, _ in TXT2IMG_ARGS)
# A1111's "same as the first pass" choices of the Hires. fix dropdowns
SAME = {
    "hr_checkpoint_name": "Use same checkpoint",
    "hr_sampler_name": "Use same sampler",
    "hr_scheduler": "Use same scheduler",
}


def txt2img_create_processing(
    id_task: str,
    request: Any,
    prompt: str,
    negative_prompt: str,
    prompt_styles: Any,
    n_iter: int,
    batch_size: int,
    cfg_scale: float,
    height: int,
    width: int,
    enable_hr: bool,
    denoising_strength: float,
    hr_scale: float,
    hr_upscaler: str,
    hr_second_pass_steps: int,
    hr_resize_x: int,
    hr_resize_y: int,
    hr_checkpoint_name: str,
    hr_sampler_name: str,
    hr_scheduler: str,
    hr_prompt: str,
    hr_negative_prompt: str,
    override_settings_texts: Any,
    *args: Any,
    force_enable_hr: bool = False,
    **job: Any,
) -> StableDiffusionProcessingTxt2Img:
    """A1111 1.10: the txt2img job from the tab's values, with the txt2img scripts (`args`); not run."""
    from modules.infotext_utils import create_override_settings_dict

    check_job_fields(StableDiffusionProcessingTxt2Img, job, "txt2img")
    app = shared.app()
    script_args, tab = split_tab_values(args, len(app.scripts.txt2img.inputs))
    if tab is not None:  # the values of Sumi's Generate as Gradio 3 code reads it (a1111_generate)
        named = {name: value for name, value in locals().items() if name in TXT2IMG_NAMES}
        p = txt2img_job(named, tab)
        p.enable_hr = p.enable_hr or force_enable_hr
        job = {"override_settings": create_override_settings_dict(override_settings_texts or []), **job}
        for name, value in job.items():
            setattr(p, name, value)
        return with_scripts(p, app.scripts.txt2img, script_args, request, "txt2img", app.options)
    hires = {"hr_checkpoint_name": hr_checkpoint_name, "hr_sampler_name": hr_sampler_name}
    hires["hr_scheduler"] = hr_scheduler
    values: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "styles": list(prompt_styles or []),
        "n_iter": int(n_iter),
        "batch_size": int(batch_size),
        "cfg_scale": float(cfg_scale),
        "width": int(width),
        "height": int(height),
        "enable_hr": bool(enable_hr) or force_enable_hr,
        "denoising_strength": float(denoising_strength),
        "hr_scale": float(hr_scale),
        "hr_upscaler": hr_upscaler or None,
        "hr_second_pass_steps": int(hr_second_pass_steps or 0),
        "hr_resize_x": int(hr_resize_x or 0),
        "hr_resize_y": int(hr_resize_y or 0),
        **{k: None if not v or v == SAME[k] else v for k, v in hires.items()},
        "hr_prompt": hr_prompt or "",
        "hr_negative_prompt": hr_negative_prompt or "",
        "override_settings": create_override_settings_dict(override_settings_texts or []),
    }
    p = StableDiffusionProcessingTxt2Img(**{**values, **job})
    return with_scripts(p, app.scripts.txt2img, script_args, request, "txt2img", app.options)


def txt2img(id_task: str, request: Any, *args: Any, **job: Any) -> tuple[list[Any], str, str, str]:
    """A1111 1.10's txt2img submit: `txt2img_create_processing`'s arguments; runs the job with its
    scripts and returns (images, generation info JSON, info HTML, comments HTML)."""
    p = txt2img_create_processing(id_task, request, *args, **job)
    with closing(p):
        processed = shared.app().runner.txt2img(p, _task(id_task))
    return tab_outputs(processed, shared.app().options)


def txt2img_upscale(
    id_task: str, request: Any, gallery: Any, gallery_index: int, generation_info: str, *args: Any, **job: Any
) -> tuple[list[Any], str, str, str]:
    """A1111 1.8+'s ✨: gallery image `gallery_index` through the hires pass of the job that
    `args` (`txt2img_create_processing`'s arguments after `request`) describes, with its seed from its
    infotext; returns the gallery with that image replaced, the updated generation info JSON, and the
    new image's info and comments HTML."""
    from modules.infotext_utils import image_from_url_text

    items = [_gallery_item(item) for item in list(gallery or [])]
    if not items:
        raise InvalidRequestError("No image to upscale")
    index = int(gallery_index)
    if not 0 <= index < len(items):
        raise InvalidRequestError(f"Bad image index: {index}")
    try:
        geninfo = json.loads(generation_info or "{}")
    except ValueError as exc:
        raise InvalidRequestError(f"generation_info is not JSON: {exc}") from exc
    infotexts = list(geninfo.get("infotexts") or [])
    image = image_from_url_text(items[index])
    if image is None:
        raise InvalidRequestError("No image to upscale")
    p = txt2img_create_processing(id_task, request, *args, force_enable_hr=True, **job)
    upscale_job(p, image, infotexts[index] if index < len(infotexts) else "")
    with closing(p):
        processed = shared.app().runner.txt2img(p, _task(id_task))
    new_gallery, info = replaced(items, geninfo, index, list(processed.images), [processed.info])
    info.pop("selected", None)  # Sumi's gallery key, not in A1111's generation info
    return (
        new_gallery,
        json.dumps(info),
        plaintext_to_html(processed.info),
        plaintext_to_html(processed.comments, classname="comments"),
    )


def _gallery_item(item: Any) -> Any:
    """A gallery entry as Gradio 6 takes it back: an A1111 file dict becomes its path."""
    if isinstance(item, dict) and item.get("name") and not item.get("image"):
        return item["name"]
    return item


def _task(id_task: Any) -> str | None:
    return id_task if isinstance(id_task, str) and id_task else None


__all__ = ["txt2img", "txt2img_create_processing", "txt2img_upscale"]
