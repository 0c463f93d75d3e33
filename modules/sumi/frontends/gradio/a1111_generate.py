"""The txt2img and img2img Generate buttons as A1111 wires them, for Gradio 3 code that reads the page's
Blocks in `on_app_started(demo, app)` (`demo.dependencies`, `demo.fns`).

A1111's txt2img Generate is `click(fn=wrap_gradio_gpu_call(modules.txt2img.txt2img, extra_outputs=[None,
"", ""]), _js="submit", inputs=[id_task, prompt, negative_prompt, prompt_styles, n_iter, ...,
override_settings] + the scripts' inputs, outputs=[gallery, generation_info, html_info, html_log])`
(img2img's: `modules.img2img.img2img`, `_js="submit_img2img"`, `[id_task, mode, prompt, ...]`).
Extensions find it by the Generate button and its four outputs and bind their own button to its inputs:
agent-scheduler's Enqueue records those values and later replays them through
`modules.txt2img.txt2img(id_task, request, *values)`.

Sumi's Generate has inputs and outputs of its own (it streams progress), and stays as it is. Beside it,
`describe_generate` gives the page's Blocks an A1111-shaped description of it (a `Gradio3Event`, which
only `demo.dependencies` / `demo.fns` show; the page never runs it), whose inputs are:

1. A1111's, in A1111's order (`TXT2IMG_ARGS`, `IMG2IMG_ARGS`), each one Sumi's component of that value;
   a hidden text box for the task id (`submit` fills it), and a `gr.State` of A1111's empty value where
   Sumi has no component of A1111's shape (the override-settings list; img2img's three canvases, whose
   Gradio 6 values are not Gradio 3's, and the batch upload);
2. the tab's script inputs (the "Script" dropdown's index and every script's controls: A1111's
   `script_args`), as Sumi's Generate sends them;
3. `MARKER` (a `gr.State`), then the tab's values A1111 keeps elsewhere (its "Sampler" and "Seed" scripts,
   the ControlNet units, Sumi's canvases): the ControlNet inputs, then `TXT2IMG_TAIL` / `IMG2IMG_TAIL`.

Called with such a list, `modules.txt2img.txt2img` / `modules.img2img.img2img` find the marker after the
script args (`split_tab_values`) and build the job Sumi's Generate builds from the same values
(`txt2img_job`, `img2img_job`), A1111's named values taking precedence (an extension may have edited
them); a caller that passes A1111's arguments only gets A1111's behaviour, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.frontends.gradio import img2img as i2i
from modules.sumi.frontends.gradio import txt2img as t2i
from modules.sumi.frontends.gradio.controlnet_handlers import units_from_values
from modules.sumi.frontends.gradio.gradio3_compat import Gradio3Event, describe_event
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)

if TYPE_CHECKING:
    from modules.sumi.frontends.gradio.txt2img import Txt2ImgTab

# What follows the script args in a Gradio 3 Generate's inputs: the tab's own values (see the module doc).
MARKER = "sumi:generate-tab-values"

# A1111 1.10's arguments of `modules.txt2img.txt2img` after (id_task, request), and the txt2img tab
# value each one is (None: Sumi has no component of that shape; a State of `PLACEHOLDERS` stands in).
TXT2IMG_ARGS: tuple[tuple[str, str | None], ...] = (
    ("prompt", "prompt"),
    ("negative_prompt", "negative_prompt"),
    ("prompt_styles", "styles"),
    ("n_iter", "n_iter"),
    ("batch_size", "batch_size"),
    ("cfg_scale", "cfg_scale"),
    ("height", "height"),
    ("width", "width"),
    ("enable_hr", "enable_hr"),
    ("denoising_strength", "denoising_strength"),
    ("hr_scale", "hr_scale"),
    ("hr_upscaler", "hr_upscaler"),
    ("hr_second_pass_steps", "hr_second_pass_steps"),
    ("hr_resize_x", "hr_resize_x"),
    ("hr_resize_y", "hr_resize_y"),
    ("hr_checkpoint_name", "hr_checkpoint_name"),
    ("hr_sampler_name", "hr_sampler_name"),
    ("hr_scheduler", "hr_scheduler"),
    ("hr_prompt", "hr_prompt"),
    ("hr_negative_prompt", "hr_negative_prompt"),
    ("override_settings_texts", None),
)

# The same for `modules.img2img.img2img` after (id_task, request).
IMG2IMG_ARGS: tuple[tuple[str, str | None], ...] = (
    ("mode", "mode"),
    ("prompt", "prompt"),
    ("negative_prompt", "negative_prompt"),
    ("prompt_styles", "styles"),
    ("init_img", "init_img"),
    ("sketch", None),
    ("init_img_with_mask", None),
    ("inpaint_color_sketch", None),
    ("inpaint_color_sketch_orig", None),
    ("init_img_inpaint", "init_img_inpaint"),
    ("init_mask_inpaint", "init_mask_inpaint"),
    ("mask_blur", "mask_blur"),
    ("mask_alpha", "mask_alpha"),
    ("inpainting_fill", "inpainting_fill"),
    ("n_iter", "n_iter"),
    ("batch_size", "batch_size"),
    ("cfg_scale", "cfg_scale"),
    ("image_cfg_scale", "image_cfg_scale"),
    ("denoising_strength", "denoising_strength"),
    ("selected_scale_tab", "scale_tab"),
    ("height", "height"),
    ("width", "width"),
    ("scale_by", "scale_by"),
    ("resize_mode", "resize_mode"),
    ("inpaint_full_res", "inpaint_full_res"),
    ("inpaint_full_res_padding", "inpaint_full_res_padding"),
    ("inpainting_mask_invert", "inpainting_mask_invert"),
    ("img2img_batch_input_dir", "batch_input_dir"),
    ("img2img_batch_output_dir", "batch_output_dir"),
    ("img2img_batch_inpaint_mask_dir", "batch_inpaint_mask_dir"),
    ("override_settings_texts", None),
    ("img2img_batch_use_png_info", "batch_use_png_info"),
    ("img2img_batch_png_info_props", "batch_png_info_props"),
    ("img2img_batch_png_info_dir", "batch_png_info_dir"),
    ("img2img_batch_source_type", None),
    ("img2img_batch_upload", None),
)

# A1111's value where Sumi has no component of its shape (agent-scheduler reads `init_img_with_mask` as a
# dict even when another sub-tab is chosen); Sumi's batch reads folders.
PLACEHOLDERS: dict[str, Any] = {
    "override_settings_texts": [],
    "init_img_with_mask": {"image": None, "mask": None},
    "img2img_batch_source_type": "from dir",
    "img2img_batch_upload": [],
}

# A1111's labels of the components a placeholder stands for: extensions find the Generate inputs by label
# (supermerger takes the scripts' inputs as those after "Override settings")
PLACEHOLDER_LABELS = {"override_settings_texts": "Override settings"}


def _placeholder(name: str) -> gr.State:
    state = gr.State(PLACEHOLDERS.get(name))
    if name in PLACEHOLDER_LABELS:
        state.label = PLACEHOLDER_LABELS[name]  # type: ignore[attr-defined]  # gr.State has no label of its own
    return state


# The tab values after the marker and the ControlNet inputs. Plain values come last: A1111's
# `create_submit_args` (the `submit` functions extensions call) empties the third value from the end
# when it is a list (Gradio 3's gallery output).
_SAMPLER_AND_SEEDS = (
    "sampler_name",
    "scheduler",
    "steps",
    "seed",
    "seed_enable_extras",
    "subseed",
    "subseed_strength",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "restore_faces",
    "tiling",
    "refiner_enabled",
    "refiner_checkpoint",
    "refiner_switch_at",
)
TXT2IMG_TAIL = (*_SAMPLER_AND_SEEDS, "hr_cfg")
IMG2IMG_TAIL = ("sketch", "init_img_with_mask", "inpaint_color_sketch", *_SAMPLER_AND_SEEDS)


# -- the description on the page ---------------------------------------------------------------------------
def describe_generate(page: gr.Blocks, tab: Txt2ImgTab, tabname: str) -> Gradio3Event:
    """Add to `page` A1111's Generate event of the txt2img or img2img `tab` (call inside `page`)."""
    c, r = tab.controls, tab.results
    named, tail, fn_name = (
        (IMG2IMG_ARGS, IMG2IMG_TAIL, "img2img")
        if tabname == "img2img"
        else (TXT2IMG_ARGS, TXT2IMG_TAIL, "txt2img")
    )
    id_task = gr.Textbox(visible=False, elem_id=f"{tabname}_a1111_id_task", show_label=False)
    a1111 = [c[sumi] if sumi else _placeholder(name) for name, sumi in named]
    scripts = tab.scripts.inputs if tab.scripts else []
    control = tab.controlnet.inputs if tab.controlnet else []
    inputs = [id_task, *a1111, *scripts, gr.State(MARKER), *control, *(c[n] for n in tail)]
    event = Gradio3Event(
        targets=[tab.buttons["generate"]],
        trigger="click",
        inputs=inputs,
        outputs=[r["gallery"], r["generation_info"], r["info_html"], r["error"]],
        fn=_not_run(fn_name),
        js="submit_img2img" if tabname == "img2img" else "submit",
        api_name=tabname,
    )
    describe_event(page, event)
    return event


def _not_run(name: str) -> Callable[..., Any]:
    def handler(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(
            f"Sumi's {name} Generate runs its own handler; call modules.{name}.{name}(id_task, request, *args) "
            "with these inputs' values to run A1111's"
        )

    handler.__name__ = f"f_{name}"
    return handler


# -- reading the values back ---------------------------------------------------------------------------------
def split_tab_values(args: Sequence[Any], script_inputs: int) -> tuple[list[Any], list[Any] | None]:
    """(script args, the tab values after the marker or None) of the arguments after A1111's named ones;
    `script_inputs` is the runner's count of script inputs (dropdown included). The marker is looked
    for where the scripts end, then (the scripts changed since the values were recorded) from the end."""
    args = list(args)
    at = script_inputs if _is_marker(args, script_inputs) else None
    if at is None:
        at = next((i for i in range(len(args) - 1, -1, -1) if _is_marker(args, i)), None)
    if at is None:
        return args, None
    return args[:at], args[at + 1 :]


def _is_marker(args: list[Any], i: int) -> bool:
    return 0 <= i < len(args) and isinstance(args[i], str) and args[i] == MARKER


def _tab_values(
    named: dict[str, Any],
    args: tuple[tuple[str, str | None], ...],
    tail_names: Sequence[str],
    tail: list[Any],
) -> tuple[dict[str, Any], list[Any]]:
    """(Sumi's tab values by name, the ControlNet values) from A1111's named values and the tail."""
    n = len(tail_names)
    if len(tail) < n:
        raise ValueError(f"Generate's tab values: {len(tail)} given after the marker, {n} expected")
    values = dict(zip(tail_names, tail[len(tail) - n :], strict=True))
    values.update({sumi: named[a1111] for a1111, sumi in args if sumi is not None and a1111 in named})
    return values, tail[: len(tail) - n]


def txt2img_job(named: dict[str, Any], tail: list[Any]) -> StableDiffusionProcessingTxt2Img:
    """The job Sumi's txt2img Generate makes from A1111's named values and the tab values of the tail."""
    values, control = _tab_values(named, TXT2IMG_ARGS, TXT2IMG_TAIL, tail)
    return t2i.tab_processing([values[n] for n in t2i.TAB_INPUT_NAMES], units_from_values(control))


def img2img_job(named: dict[str, Any], tail: list[Any]) -> StableDiffusionProcessingImg2Img:
    """The job Sumi's img2img Generate makes (on the Batch sub-tab: without an image) from A1111's named
    values and the tab values of the tail."""
    values, control = _tab_values(named, IMG2IMG_ARGS, IMG2IMG_TAIL, tail)
    v = i2i.Img2ImgValues(*(values[n] for n in i2i.INPUT_NAMES))
    return i2i.build_processing(v, units_from_values(control))
