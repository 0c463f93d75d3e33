"""A1111's `modules.img2img`: `img2img`, the img2img tab's submit function with A1111 1.10's arguments
(extensions wrap it, agent-scheduler, or call it), and `process_batch` (the Batch tab: every image of a
folder through one img2img job; adetailer patches it for a moment). Both run on the running App's job
runner, like the tab and the API.

Sumi's img2img tab has its own handler and does not go through `img2img`: wrapping it changes what
callers of `modules.img2img.img2img` get, not the tab.

`*args` are the img2img script runner's arguments (`scripts.scripts_img2img`: `args[0]` the selected
script, 1-based, then every script's slice). A1111 1.10 takes steps, sampler, scheduler and seeds from
its built-in "Sampler" and "Seed" always-on scripts' slices; Sumi has no such scripts, so the job keeps
`StableDiffusionProcessingImg2Img`'s defaults for them, or the values given as keyword arguments
(Sumi's addition: any field of the job by A1111's name, e.g. `steps=20, sampler_name="Euler a", seed=1`).
The values of the tab's Generate as Gradio 3 code finds it in `demo.dependencies` (see `modules.txt2img`)
make the job the tab's Generate makes from them.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

from modules import shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.frontends.gradio.a1111_generate import IMG2IMG_ARGS, img2img_job, split_tab_values
from modules.sumi.frontends.gradio.a1111_submit import check_job_fields, tab_outputs, with_scripts
from modules.sumi.services.jobs.img2img import scaled_by
from modules.sumi.services.jobs.img2img_batch import PNG_INFO_PROPS, BatchFolders
from modules.sumi.services.jobs.img2img_sources import source_images
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessingImg2Img,
)

MODE_NAMES = ("img2img", "Sketch", "Inpaint", "Inpaint sketch", "Inpaint upload", "Batch")
MODE_BATCH = 5
IMG2IMG_NAMES = frozenset(name for name, _ in IMG2IMG_ARGS)


def img2img(
    id_task: str,
    request: Any,
    mode: int,
    prompt: str,
    negative_prompt: str,
    prompt_styles: Any,
    init_img: Any,
    sketch: Any,
    init_img_with_mask: Any,
    inpaint_color_sketch: Any,
    inpaint_color_sketch_orig: Any,
    init_img_inpaint: Any,
    init_mask_inpaint: Any,
    mask_blur: int,
    mask_alpha: float,
    inpainting_fill: int,
    n_iter: int,
    batch_size: int,
    cfg_scale: float,
    image_cfg_scale: float,
    denoising_strength: float,
    selected_scale_tab: int,
    height: int,
    width: int,
    scale_by: float,
    resize_mode: int,
    inpaint_full_res: bool,
    inpaint_full_res_padding: int,
    inpainting_mask_invert: int,
    img2img_batch_input_dir: str,
    img2img_batch_output_dir: str,
    img2img_batch_inpaint_mask_dir: str,
    override_settings_texts: Any,
    img2img_batch_use_png_info: bool,
    img2img_batch_png_info_props: list,
    img2img_batch_png_info_dir: str,
    img2img_batch_source_type: str,
    img2img_batch_upload: list,
    *args: Any,
    **job: Any,
) -> tuple[list[Any], str, str, str]:
    """A1111 1.10's img2img submit: build the job from the tab's values and `mode` (0 img2img, 1 Sketch,
    2 Inpaint, 3 Inpaint sketch, 4 Inpaint upload, 5 Batch), run it with the img2img scripts (`args`)
    and return (images, generation info JSON, info HTML, comments HTML)."""
    from modules.infotext_utils import create_override_settings_dict

    check_job_fields(StableDiffusionProcessingImg2Img, job, "img2img")
    app = shared.app()
    script_args, tab = split_tab_values(args, len(app.scripts.img2img.inputs))
    named = {name: value for name, value in locals().items() if name in IMG2IMG_NAMES}
    is_batch = int(mode or 0) == MODE_BATCH
    job = {"override_settings": create_override_settings_dict(override_settings_texts or []), **job}
    if tab is not None:  # the values of Sumi's Generate as Gradio 3 code reads it (a1111_generate)
        p = img2img_job(named, tab)
        for name, value in job.items():
            setattr(p, name, value)
    else:
        p = _processing(named, job)
    with_scripts(p, app.scripts.img2img, script_args, request, "img2img", app.options)
    with closing(p):
        if is_batch:
            processed = _run_batch(
                p,
                script_args,
                img2img_batch_source_type,
                img2img_batch_upload,
                (img2img_batch_input_dir, img2img_batch_output_dir, img2img_batch_inpaint_mask_dir),
                to_scale=int(selected_scale_tab or 0) == 1,
                scale_by=scale_by,
                use_png_info=img2img_batch_use_png_info,
                png_info_props=img2img_batch_png_info_props,
                png_info_dir=img2img_batch_png_info_dir,
            )
        else:
            task = id_task if isinstance(id_task, str) and id_task else None
            processed = app.runner.img2img(p, task)
    return tab_outputs(processed, app.options)


def _processing(a: dict[str, Any], job: dict[str, Any]) -> StableDiffusionProcessingImg2Img:
    """The job of A1111's img2img arguments `a` (by name) and Sumi's job fields `job`."""
    mode = int(a["mode"] or 0)
    is_batch = mode == MODE_BATCH
    image, mask = source_images(
        mode,
        a["init_img"],
        a["sketch"],
        a["init_img_with_mask"],
        a["inpaint_color_sketch"],
        a["inpaint_color_sketch_orig"],
        a["init_img_inpaint"],
        a["init_mask_inpaint"],
        a["mask_blur"],
        a["mask_alpha"],
    )
    width, height = a["width"], a["height"]
    if not is_batch:
        if not 0 <= mode < MODE_BATCH:
            raise InvalidRequestError(f"img2img mode {mode} is not one of 0..5")
        if image is None:
            raise InvalidRequestError(f"{MODE_NAMES[mode]}: no input image")
        if mode == 4 and mask is None:
            raise InvalidRequestError("Inpaint upload: no mask image")
        if int(a["selected_scale_tab"] or 0) == 1:
            width, height = scaled_by(image, a["scale_by"])
    if not 0.0 <= float(a["denoising_strength"]) <= 1.0:
        raise InvalidRequestError("can only work with strength in [0.0, 1.0]")
    values: dict[str, Any] = {
        "prompt": a["prompt"],
        "negative_prompt": a["negative_prompt"],
        "styles": list(a["prompt_styles"] or []),
        "batch_size": int(a["batch_size"]),
        "n_iter": int(a["n_iter"]),
        "cfg_scale": float(a["cfg_scale"]),
        "width": int(width),
        "height": int(height),
        "init_images": [image] if image is not None else [],
        "mask": mask,
        "mask_blur": int(a["mask_blur"]),
        "inpainting_fill": int(a["inpainting_fill"]),
        "resize_mode": int(a["resize_mode"]),
        "denoising_strength": float(a["denoising_strength"]),
        "image_cfg_scale": float(a["image_cfg_scale"]),
        "inpaint_full_res": bool(a["inpaint_full_res"]),
        "inpaint_full_res_padding": int(a["inpaint_full_res_padding"]),
        "inpainting_mask_invert": int(a["inpainting_mask_invert"]),
    }
    return StableDiffusionProcessingImg2Img(**{**values, **job})


def _run_batch(
    p: StableDiffusionProcessingImg2Img,
    args: Any,
    source_type: str,
    upload: Any,
    folders: tuple[str, str, str],
    *,
    png_info_dir: str,
    **options: Any,
) -> Processed:
    """The Batch sub-tab: the uploaded files (no output or mask folder) or the input folder."""
    if source_type == "upload":
        if not isinstance(upload, list) or not upload:
            raise InvalidRequestError("Batch: upload the images first")
        info_dir = "" if _hide_dirs() else png_info_dir
        processed = process_batch(p, upload, "", "", args, png_info_dir=info_dir, **options)
    else:
        if _hide_dirs():
            raise InvalidRequestError("Launched with --hide-ui-dir-config, batch img2img disabled")
        input_dir, output_dir, mask_dir = folders
        processed = process_batch(
            p, input_dir, output_dir, mask_dir, args, png_info_dir=png_info_dir, **options
        )
    return processed if processed is not None else Processed(p, [], p.seed, "")


def _hide_dirs() -> bool:
    return bool(getattr(shared.app().args, "hide_ui_dir_config", False))


def process_batch(
    p: Any,
    input: Any,  # noqa: A002 (A1111's name)
    output_dir: str,
    inpaint_mask_dir: str,
    args: Any,
    to_scale: bool = False,
    scale_by: float = 1.0,
    use_png_info: bool = False,
    png_info_props: list[str] | None = None,
    png_info_dir: str | None = None,
) -> Processed:
    """A1111: run `p` for every image of the folder `input` (or the list of files), with the mask of
    the same name from `inpaint_mask_dir` (or its one mask), writing to `output_dir` when given."""
    folders = BatchFolders(
        input_dir=input if isinstance(input, str) else [getattr(f, "name", f) for f in input],
        output_dir=output_dir or "",
        inpaint_mask_dir=inpaint_mask_dir or "",
        to_scale=to_scale,
        scale_by=scale_by,
        use_png_info=use_png_info,
        png_info_props=list(PNG_INFO_PROPS if png_info_props is None else png_info_props),
        png_info_dir=png_info_dir or "",
    )
    return shared.app().runner.img2img_batch(p, folders, list(args or []))


__all__ = ["img2img", "process_batch"]
