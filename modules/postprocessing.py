"""A1111's `modules.postprocessing`: the Extras job for extensions and scripts that call it directly.

`run_postprocessing` runs the Extras scripts with their flat argument list; `run_extras` is A1111's
older entry point with named upscale and face restoration values. Both run on the App's job worker
(inline when called from inside a job) and return A1111's `(images, html_info, "")`.
"""

from __future__ import annotations

from typing import Any

from modules import shared
from modules.sumi.services.postprocessing.a1111_args import run_extras_scripts_args, run_order
from modules.sumi.services.postprocessing.service import BatchImage, ExtrasRequest


def _folder_items(image_folder: Any) -> list[Any]:
    """Gradio 3 file objects (`.name`, `.orig_name`), paths or PIL images, as the Extras job takes them."""
    items: list[Any] = []
    for item in image_folder or []:
        name = getattr(item, "name", None)
        if name is not None and not hasattr(item, "size"):
            from PIL import Image

            picture = Image.open(name)
            picture.load()
            items.append(BatchImage(picture, str(getattr(item, "orig_name", "") or name)))
        else:
            items.append(item)
    return items


def run_postprocessing(
    extras_mode: int,
    image: Any,
    image_folder: Any,
    input_dir: str,
    output_dir: str,
    show_extras_results: bool,
    *args: Any,
    save_output: bool = True,
    order: list[str] | None = None,
) -> tuple[list[Any], str, str]:
    request = ExtrasRequest(
        mode=int(extras_mode),
        image=image or None,
        images=_folder_items(image_folder),
        input_dir=str(input_dir or ""),
        output_dir=str(output_dir or ""),
        show_results=bool(show_extras_results),
        args=list(args),
        order=order,
        save=save_output,
    )
    result = shared.app().extras.run(request)
    return list(result.images), result.html_info, ""


def run_postprocessing_webui(id_task: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], str, str]:
    return run_postprocessing(*args, **kwargs)


def _layout():
    import gradio as gr

    return gr.Blocks()


def run_extras(
    extras_mode: int,
    resize_mode: int,
    image: Any,
    image_folder: Any,
    input_dir: str,
    output_dir: str,
    show_extras_results: bool,
    gfpgan_visibility: float,
    codeformer_visibility: float,
    codeformer_weight: float,
    upscaling_resize: float,
    upscaling_resize_w: int,
    upscaling_resize_h: int,
    upscaling_crop: bool,
    extras_upscaler_1: str,
    extras_upscaler_2: str,
    extras_upscaler_2_visibility: float,
    upscale_first: bool,
    save_output: bool = True,
    max_side_length: int = 0,
) -> tuple[list[Any], str, str]:
    """A1111's old handler (its API used it): named values mapped onto the Extras scripts."""
    named = run_extras_scripts_args(
        resize_mode=resize_mode,
        gfpgan_visibility=gfpgan_visibility,
        codeformer_visibility=codeformer_visibility,
        codeformer_weight=codeformer_weight,
        upscaling_resize=upscaling_resize,
        upscaling_resize_w=upscaling_resize_w,
        upscaling_resize_h=upscaling_resize_h,
        upscaling_crop=upscaling_crop,
        extras_upscaler_1=extras_upscaler_1,
        extras_upscaler_2=extras_upscaler_2,
        extras_upscaler_2_visibility=extras_upscaler_2_visibility,
        max_side_length=max_side_length,
    )
    args = shared.app().scripts.postproc.create_args_for_run(named, _layout)
    order = run_order(upscale_first, gfpgan_visibility > 0 or codeformer_visibility > 0)
    return run_postprocessing(
        extras_mode, image, image_folder, input_dir, output_dir, show_extras_results, *args,
        save_output=save_output, order=order,
    )  # fmt: skip
