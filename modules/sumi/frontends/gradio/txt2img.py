"""The txt2img tab: A1111's controls and element ids, and the Generate / Interrupt / Skip handlers.

Generate validates the request at once (a bad value is a message, not a crash), submits the job to
the App's single worker queue, then streams progress and live previews until the job is done. Every
exception from the job ends as a message in the UI; the server keeps serving.

Scripts (modules/sumi/frontends/gradio/scripts_ui.py) sit under the ControlNet accordion: the always-on scripts' controls
and the "Script" dropdown. Generate's inputs are the controls below (INPUT_NAMES), the ControlNet
units' values, then the dropdown and every script's controls (A1111's `script_args`); the job runs
through the job runner (`app.runner`), which runs the selected script or a plain job with the always-on
hooks.
The tab's own components are made through `ComponentHooks.make`, so extensions' before/after
component callbacks see them (e.g. `txt2img_width`) as in A1111.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import gradio as gr

from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES
from modules.sumi.frontends.gradio import hires_ui, output_panel, paste, refiner_ui, results
from modules.sumi.frontends.gradio.controlnet import ControlNetUI, create_controlnet, wire_controlnet
from modules.sumi.frontends.gradio.controlnet_handlers import paste_fields as controlnet_paste_fields
from modules.sumi.frontends.gradio.controlnet_handlers import units_from_values
from modules.sumi.frontends.gradio.extension_card_pages import create_page_tabs
from modules.sumi.frontends.gradio.extra_networks import create_extra_networks, wire_gallery
from modules.sumi.frontends.gradio.faces_ui import restore_faces_checkbox
from modules.sumi.frontends.gradio.generation_tabs import generation_tab, generation_tabs
from modules.sumi.frontends.gradio.login import current_login
from modules.sumi.frontends.gradio.paste_buttons import image_from_url_text, readable_roots
from modules.sumi.frontends.gradio.progress import PROGRESS_CSS, refresh_seconds, watch_job
from modules.sumi.frontends.gradio.scripts_ui import ComponentHooks, ScriptsUI, create_scripts, script_args
from modules.sumi.frontends.gradio.styles import create_styles_row
from modules.sumi.frontends.gradio.tiling import create_tiling
from modules.sumi.frontends.gradio.token_counter import create_token_counter, wire_token_counters
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessing,
    StableDiffusionProcessingTxt2Img,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    from modules.sumi.app import App
    from modules.sumi.services.jobs.queue import Job
    from modules.sumi.services.jobs.tasks import TaskBook

DEFAULT_SAMPLER = "DPM++ 2M"
DEFAULT_SCHEDULE = "Automatic"
# Generate's outputs, in the order the handler yields them.
OUTPUTS = ("gallery", "preview", "progress", "info_html", "error", "info_state", "generation_info", "task_id")


@dataclass
class Txt2ImgValues:
    """The values of the txt2img controls, in the order of the Generate event's inputs."""

    prompt: str = ""
    negative_prompt: str = ""
    sampler_name: str = DEFAULT_SAMPLER
    scheduler: str = DEFAULT_SCHEDULE
    steps: float = 20
    width: float = 512
    height: float = 512
    n_iter: float = 1
    batch_size: float = 1
    cfg_scale: float = 7.0
    seed: float | None = -1
    seed_enable_extras: bool = False
    subseed: float | None = -1
    subseed_strength: float = 0.0
    seed_resize_from_w: float = 0
    seed_resize_from_h: float = 0
    styles: list[str] | None = None
    restore_faces: bool = False
    tiling: bool = False
    refiner_enabled: bool = False
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = refiner_ui.DEFAULT_SWITCH_AT


INPUT_NAMES = tuple(f.name for f in fields(Txt2ImgValues))


_CSS_LENGTH = re.compile(r"\d+(?:\.\d+)?(?:px|em|rem|vh|%)")


def _int(value: Any) -> Any:
    """Whole numbers from sliders (which send floats) become ints; anything else is left for validation."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def build_processing(
    v: Txt2ImgValues, controlnet_units: list | None = None
) -> StableDiffusionProcessingTxt2Img:
    """The job the UI asks for; the UI saves images (A1111 UI default)."""
    return StableDiffusionProcessingTxt2Img(
        prompt=v.prompt or "",
        negative_prompt=v.negative_prompt or "",
        sampler_name=v.sampler_name or DEFAULT_SAMPLER,
        scheduler=v.scheduler or DEFAULT_SCHEDULE,
        steps=_int(v.steps),
        width=_int(v.width),
        height=_int(v.height),
        n_iter=_int(v.n_iter),
        batch_size=_int(v.batch_size),
        cfg_scale=float(v.cfg_scale),
        seed=_seed(v.seed),
        seed_enable_extras=bool(v.seed_enable_extras),
        subseed=_seed(v.subseed),
        subseed_strength=float(v.subseed_strength or 0.0),
        seed_resize_from_w=_int(v.seed_resize_from_w or 0),
        seed_resize_from_h=_int(v.seed_resize_from_h or 0),
        do_not_save_samples=False,
        do_not_save_grid=False,
        styles=list(v.styles or []),
        restore_faces=bool(v.restore_faces),
        tiling=bool(v.tiling),
        controlnet_units=list(controlnet_units or []),
        **refiner_ui.job_fields(v.refiner_enabled, v.refiner_checkpoint, v.refiner_switch_at),
    )


def _seed(value: Any) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return -1
    if isinstance(value, str):  # --use-textbox-seed: every digit counts
        try:
            return int(value.strip())
        except ValueError:
            pass
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"seed must be a whole number, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"seed must be a whole number, got {value!r}")
    return int(number)


def textbox_seed(app: Any) -> bool:
    """A1111's --use-textbox-seed."""
    return bool(getattr(app.args, "use_textbox_seed", False))


# -- Generate ------------------------------------------------------------------------------------------
def outputs(**values: Any) -> tuple[Any, ...]:
    """One yield of the Generate handler; outputs not named are left as they are."""
    unknown = set(values) - set(OUTPUTS)
    if unknown:
        raise KeyError(f"not a Generate output: {sorted(unknown)}")
    return tuple(values[name] if name in values else gr.skip() for name in OUTPUTS)


def _end_of_run() -> dict[str, Any]:
    """While a job runs its live preview takes the gallery's place (as in A1111); this undoes it. The
    page forgets the job's task id (nothing left to restore)."""
    return {"preview": gr.update(visible=False, value=None), "progress": "", "task_id": ""}


def failed(exc: BaseException) -> tuple[Any, ...]:
    return outputs(
        gallery=gr.update(visible=True), **_end_of_run(), error=results.error_html(results.error_message(exc))
    )


def finished(processed: Processed) -> tuple[Any, ...]:
    info = results.generation_info(processed)
    note = "" if processed.images else '<div class="sumi-note">No image was finished (interrupted).</div>'
    not_saved = [w for w in processed.warnings if w.startswith("Could not save")]
    note += "".join(f'<div class="sumi-note">{html.escape(w)}</div>' for w in not_saved)
    return outputs(
        **_end_of_run(),
        gallery=gr.update(visible=True, value=list(processed.images)),
        info_html=results.infotext_html(info),
        error=note,
        info_state=info,
        generation_info=processed.js(),
    )


@dataclass(frozen=True)
class GenerateInputs:
    """How Generate's inputs split: INPUT_NAMES, `controlnet` ControlNet values, then the scripts'
    inputs (dropdown + controls) when `scripts` is set."""

    controlnet: int
    scripts: Any = None  # the ScriptRunner


def generate(app: App, *values: Any, layout: GenerateInputs | None = None) -> Iterator[tuple[Any, ...]]:
    """Gradio generator for the Generate button: validate, queue, stream progress, show the result.

    `values`: the INPUT_NAMES controls, then the ControlNet units' values (`ControlNetUI.inputs`), then
    (with `layout.scripts`) the Script dropdown's index and every script's controls. Without a
    `layout` everything after INPUT_NAMES is ControlNet's and no script runs."""

    def make(main: Sequence[Any], units: list) -> StableDiffusionProcessing:
        return build_processing(Txt2ImgValues(*main), units)

    yield from run_generate(app, make, len(INPUT_NAMES), values, layout)


# The tab's Generate inputs: its controls, then the Hires. fix accordion's (hires_ui.HIRES_FIELDS).
TAB_INPUT_NAMES = INPUT_NAMES + hires_ui.HIRES_FIELDS


def tab_processing(main: Sequence[Any], units: list) -> StableDiffusionProcessingTxt2Img:
    """The job of the tab's Generate: `main` holds the TAB_INPUT_NAMES values, `units` ControlNet's."""
    k = len(INPUT_NAMES)
    return hires_ui.apply_values(
        build_processing(Txt2ImgValues(*main[:k]), units), hires_ui.HiresValues(*main[k:])
    )


def generate_with_hires(
    app: App, *values: Any, layout: GenerateInputs | None = None
) -> Iterator[tuple[Any, ...]]:
    """Generate on the tab: TAB_INPUT_NAMES (the controls and the Hires. fix accordion), then as `generate`."""
    yield from run_generate(app, tab_processing, len(TAB_INPUT_NAMES), values, layout)


def upscale(app: App, *values: Any, layout: GenerateInputs | None = None) -> Iterator[tuple[Any, ...]]:
    """✨ Upscale (A1111 1.8+): only the hires pass, with the current settings, on the selected gallery
    image and its seed; the result takes that image's place. `values`: Generate's inputs, then the
    gallery and the generation info."""
    *inputs, gallery, info = values
    try:
        index, item, text = hires_ui.selected_image(gallery, info)
        image = image_from_url_text(
            item[0] if isinstance(item, (list, tuple)) else item, readable_roots(app.paths.outputs_dir)
        )
        if image is None:
            raise ValueError("the gallery sent no image")
        n = len(TAB_INPUT_NAMES)
        k = layout.controlnet if layout is not None else len(inputs) - n
        main, control, scripts = inputs[:n], inputs[n : n + k], inputs[n + k :]
        p = hires_ui.upscale_job(tab_processing(main, units_from_values(control)), image, text)
        if layout is not None and layout.scripts is not None:
            p.scripts, p.script_args = layout.scripts, script_args(scripts)
        job = app.runner.submit(p)
    except Exception as exc:
        yield failed(exc)
        return
    job.future.add_done_callback(partial(_record_result, app.queue.tasks, job.id))  # for ↪️, as Generate's
    yield outputs(error="", task_id=job.id)  # Interrupt on this page takes it out while it waits
    yield from stream_progress(app, job)  # a page that goes away leaves the job queued (run_generate)
    if job.future.cancelled():
        yield left_queue()
        return
    try:
        processed = job.future.result()
    except Exception as exc:
        yield failed(exc)
        return
    items, new_info = hires_ui.replaced(
        gallery, info, index, list(processed.images), list(processed.infotexts)
    )
    yield outputs(
        **_end_of_run(),
        gallery=gr.update(visible=True, value=items, selected_index=index),
        info_html=results.infotext_html(new_info),
        error="",
        info_state=new_info,
    )


def run_generate(
    app: App,
    make: Callable[[Sequence[Any], list], StableDiffusionProcessing],
    n: int,
    values: Sequence[Any],
    layout: GenerateInputs | None,
    submit: Callable[[Any], Job] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Generate for any tab: `make(first n values, ControlNet units)` builds the job, which is queued
    (`submit(p)`, default `app.runner.submit`), watched and shown as txt2img's is."""
    try:
        k = layout.controlnet if layout is not None else len(values) - n
        main, control, scripts = values[:n], values[n : n + k], values[n + k :]
        p = make(main, units_from_values(control))
        if layout is not None and layout.scripts is not None:
            p.scripts, p.script_args = layout.scripts, script_args(scripts)
        job = (submit or app.runner.submit)(p)
    except Exception as exc:  # a bad value: say so now, before anything is queued
        yield failed(exc)
        return
    job.future.add_done_callback(partial(_record_result, app.queue.tasks, job.id))
    # A page closed or reloaded leaves its job queued, as A1111 does: it runs, its images are saved,
    # and ↪️ on the page opened again shows it (the page kept the task id). Only Interrupt stops it.
    yield outputs(error="", task_id=job.id)
    yield from stream_progress(app, job)
    yield finish(job)


def _record_result(tasks: TaskBook, task_id: str, future: Future) -> None:
    """A1111's `record_results`: a finished job's result is kept by its task id (the last two), so a
    page opened again while it ran shows its images (↪️, `restore_progress`)."""
    if not future.cancelled() and future.exception() is None:
        tasks.record(task_id, future.result())


def restore_progress(app: App, task_id: str | None) -> Iterator[tuple[Any, ...]]:
    """↪️ (A1111's restore progress): the progress, then the images, of the job this browser started
    last on the tab, found by the task id the page kept (a reload or a closed tab loses the page, not
    the job). Another login's job is not shown."""
    task_id = (task_id or "").strip()
    job = app.queue.find(task_id) if task_id else None
    if job is not None and job.owner in (None, current_login()):
        yield outputs(error="", task_id=task_id)
        yield from stream_progress(app, job)
        yield finish(job)
        return
    processed = app.queue.tasks.result(task_id) if task_id else None
    if processed is not None and job is None:
        yield finished(processed)
        return
    note = (
        "Couldn't restore the job's progress: it finished before the last two jobs, or the server "
        "restarted since (its images are in the outputs folder)."
    )
    yield outputs(**_end_of_run(), error=f'<div class="sumi-note">{note}</div>')


def stream_progress(app: App, job: Job) -> Iterator[tuple[Any, ...]]:
    for update in watch_job(app.queue, app.state, job, refresh_seconds(getattr(app, "options", None))):
        if update.preview is None:
            yield outputs(progress=update.html)
        else:
            yield outputs(
                progress=update.html,
                preview=gr.update(visible=True, value=preview_file(update.preview, app.options)),
                gallery=gr.update(visible=False),
            )


def preview_file(image: Any, options: Any) -> str:
    """The live preview written to Gradio's cache in opt `live_previews_image_format` (A1111's live
    preview file format); the browser gets that file as it is."""
    from gradio import processing_utils
    from gradio.utils import get_upload_folder

    fmt = str(options.live_previews_image_format)
    if fmt == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    return processing_utils.save_pil_to_cache(image, cache_dir=get_upload_folder(), format=fmt)


def left_queue() -> tuple[Any, ...]:
    """The end of a job that Interrupt took out of the queue before it started."""
    note = f'<div class="sumi-note">{results.LEFT_QUEUE_MESSAGE}</div>'
    return outputs(gallery=gr.update(visible=True), **_end_of_run(), error=note)


def finish(job: Job) -> tuple[Any, ...]:
    if job.future.cancelled():
        return left_queue()
    try:
        return finished(job.future.result())
    except Exception as exc:
        return failed(exc)


# -- small handlers ----------------------------------------------------------------------------------
def reuse_seed(info: dict[str, Any] | None, key: str = "all_seeds") -> Any:
    seed = results.seed_of_selected(info, key)
    return gr.skip() if seed is None else seed


def select_image(info: dict[str, Any] | None, evt: gr.SelectData) -> tuple[str, dict[str, Any] | None]:
    chosen = results.select_image(info, int(evt.index or 0))
    return results.infotext_html(chosen), chosen


def interrupt(app: App, task_id: str | None = None) -> None:
    """Interrupt: the page's own job (`task_id`, the one it shows) leaves the queue when it has not
    started, and nothing else stops (A1111 would stop whichever job runs, perhaps another tab's long
    batch); otherwise the running job, unless it is another login's (then this login's waiting jobs
    leave the queue, and a message says so)."""
    user = current_login()
    if task_id and app.queue.cancel_waiting(task_id.strip(), user):
        return
    note = app.queue.interrupt_for(user)
    if note:
        gr.Warning(note)


def skip(app: App) -> None:
    """Skip: the running job's current image, unless the job is another login's."""
    note = app.queue.skip_for(current_login())
    if note:
        gr.Warning(note)


# -- layout -------------------------------------------------------------------------------------------
@dataclass
class Txt2ImgTab:
    controls: dict[str, gr.components.Component]
    results: dict[str, Any]
    buttons: dict[str, gr.Button]
    controlnet: ControlNetUI | None = None
    scripts: ScriptsUI | None = None


def restore_progress_button(tabname: str, mk: Any = None) -> gr.Button:
    """A1111's ↪️ (`<tab>_restore_progress`), drawn hidden: the page shows it when it kept the task id of
    a job whose end it did not show (ui.js)."""
    mk = mk or (lambda cls, *args, **kwargs: cls(*args, **kwargs))
    kwargs = {"elem_classes": ["tool"], "size": "sm", "min_width": 40, "scale": 0, "visible": "hidden"}
    return mk(gr.Button, "↪️", elem_id=f"{tabname}_restore_progress", **kwargs)


def tool_button(text: str, elem_id: str, mk: Any = None) -> gr.Button:
    """A1111's small square buttons next to a field (🎲, ♻️, ⇅); `mk` is ComponentHooks.make."""
    kwargs = {"elem_id": elem_id, "elem_classes": ["tool"], "size": "sm", "min_width": 40, "scale": 0}
    return mk(gr.Button, text, **kwargs) if mk is not None else gr.Button(text, **kwargs)


def prompt_boxes(c: dict[str, Any], mk: Any, tabname: str, elem_classes: Sequence[str] = ()) -> gr.Column:
    """A1111's prompt column (`{tabname}_prompt_container`): the prompt and negative prompt boxes, each in
    its `.prompt-row` with its token counter badge (`c`: "prompt", "negative_prompt", "token_counter",
    "negative_token_counter"). Shared by Sumi's tabs and `ui_toprow.Toprow` (extensions' tabs)."""
    with gr.Column(scale=6, elem_id=f"{tabname}_prompt_container", elem_classes=list(elem_classes)) as column:
        with gr.Column(elem_id=f"{tabname}_prompt_row", elem_classes=["prompt-row"]):
            c["token_counter"] = create_token_counter(f"{tabname}_token_counter")
            c["prompt"] = mk(
                gr.Textbox,
                label="Prompt",
                elem_id=f"{tabname}_prompt",
                elem_classes=["prompt"],
                lines=3,
                show_label=False,
                placeholder="Prompt (press Ctrl+Enter to generate)",
            )
        with gr.Column(elem_id=f"{tabname}_neg_prompt_row", elem_classes=["prompt-row"]):
            c["negative_token_counter"] = create_token_counter(f"{tabname}_negative_token_counter")
            c["negative_prompt"] = mk(
                gr.Textbox,
                label="Negative prompt",
                elem_id=f"{tabname}_neg_prompt",
                elem_classes=["prompt"],
                lines=3,
                show_label=False,
                placeholder="Negative prompt",
            )
    return column


def prompt_row(
    app: App, c: dict[str, Any], b: dict[str, gr.Button], mk: Any, tabname: str = "txt2img"
) -> None:
    """A1111's top row: prompts with token counters, Generate/Interrupt/Skip, ↙️ and styles."""
    with gr.Row(elem_id=f"{tabname}_toprow", equal_height=False):
        prompt_boxes(c, mk, tabname)
        with gr.Column(scale=1, min_width=180, elem_id=f"{tabname}_actions_column"):
            with gr.Column(elem_id=f"{tabname}_generate_box", elem_classes=["generate-box"]):
                b["generate"] = mk(
                    gr.Button, "Generate", elem_id=f"{tabname}_generate", variant="primary", size="lg"
                )
                with gr.Row(elem_id=f"{tabname}_interrupt_row"):
                    b["interrupt"] = mk(
                        gr.Button, "Interrupt", elem_id=f"{tabname}_interrupt", size="sm", min_width=60
                    )
                    b["skip"] = mk(gr.Button, "Skip", elem_id=f"{tabname}_skip", size="sm", min_width=60)
            with gr.Row(elem_id=f"{tabname}_tools", equal_height=True):
                b["paste"] = tool_button(
                    "↙️", "paste" if tabname == "txt2img" else f"{tabname}_paste", mk
                )  # read infotext
                b["clear_prompt"] = tool_button("🗑️", f"{tabname}_clear_prompt", mk)
                # A1111's ↪️: shown by the page when it kept the task id of a job it did not see end
                b["restore_progress"] = restore_progress_button(tabname, mk)
                if tabname == "img2img":  # A1111: 📎 Interrogate CLIP, 📦 Interrogate DeepBooru
                    b["interrogate"] = tool_button("📎", "interrogate", mk)
                    b["deepbooru"] = tool_button("📦", "deepbooru", mk)
            # A1111: asks first (script.js's confirm_clear_prompt), then empties both prompts
            b["clear_prompt"].click(
                None,
                js="confirm_clear_prompt",
                inputs=[c["prompt"], c["negative_prompt"]],
                outputs=[c["prompt"], c["negative_prompt"]],
                show_progress="hidden",
                api_visibility="undocumented",
            )
            c["styles"] = create_styles_row(app, c["prompt"], c["negative_prompt"], tabname).dropdown


def sampler_rows(c: dict[str, Any], mk: Any, tabname: str = "txt2img") -> None:
    with gr.Row(elem_id=f"{tabname}_sampler_row"):
        c["sampler_name"] = mk(
            gr.Dropdown,
            [s.name for s in SAMPLERS],
            value=DEFAULT_SAMPLER,
            label="Sampling method",
            elem_id=f"{tabname}_sampling",
        )
        c["scheduler"] = mk(
            gr.Dropdown,
            [t.label for t in SCHEDULE_TYPES],
            value=DEFAULT_SCHEDULE,
            label="Schedule type",
            elem_id=f"{tabname}_scheduler",
        )
    c["steps"] = mk(gr.Slider, 1, 150, value=20, step=1, label="Sampling steps", elem_id=f"{tabname}_steps")


def _size_rows(c: dict[str, Any], b: dict[str, gr.Button], mk: Any) -> None:
    with gr.Row(elem_id="txt2img_dimensions_row", equal_height=True):
        with gr.Column(scale=4, min_width=180):
            c["width"] = mk(gr.Slider, 64, 2048, value=512, step=8, label="Width", elem_id="txt2img_width")
            c["height"] = mk(gr.Slider, 64, 2048, value=512, step=8, label="Height", elem_id="txt2img_height")
        b["swap"] = tool_button("⇅", "txt2img_res_switch_btn", mk)
        with gr.Column(scale=2, min_width=120, elem_id="txt2img_column_batch"):
            c["n_iter"] = mk(
                gr.Slider, 1, 100, value=1, step=1, label="Batch count", elem_id="txt2img_batch_count"
            )
            c["batch_size"] = mk(
                gr.Slider, 1, 8, value=1, step=1, label="Batch size", elem_id="txt2img_batch_size"
            )
    c["cfg_scale"] = mk(
        gr.Slider, 1.0, 30.0, value=7.0, step=0.5, label="CFG Scale", elem_id="txt2img_cfg_scale"
    )


def seed_rows(
    c: dict[str, Any], b: dict[str, gr.Button], mk: Any, tabname: str = "txt2img", *, textbox: bool = False
) -> gr.Group:
    """The seed, its 🎲/♻️ buttons and the variation seed extras; `textbox` (A1111's --use-textbox-seed):
    the seed is typed as text, so seeds above 2**53 keep every digit (a number field rounds them)."""
    seed_field = (
        {"component": gr.Textbox, "value": "-1"} if textbox else {"component": gr.Number, "value": -1}
    )
    with gr.Row(elem_id=f"{tabname}_seed_row", equal_height=True):
        c["seed"] = mk(
            seed_field["component"],
            label="Seed",
            value=seed_field["value"],
            **({} if textbox else {"precision": 0}),
            elem_id=f"{tabname}_seed",
            min_width=100,
            scale=4,
        )
        b["random_seed"] = tool_button("🎲", f"{tabname}_random_seed", mk)
        b["reuse_seed"] = tool_button("♻️", f"{tabname}_reuse_seed", mk)
        c["seed_enable_extras"] = mk(
            gr.Checkbox,
            label="Extra",
            value=False,
            elem_id=f"{tabname}_subseed_show",
            min_width=90,
            scale=0,
            container=False,
        )
    with gr.Group(visible=False, elem_id=f"{tabname}_seed_extras") as extras:
        with gr.Row(equal_height=True):
            c["subseed"] = mk(
                gr.Number, label="Variation seed", value=-1, precision=0, elem_id=f"{tabname}_subseed"
            )
            b["random_subseed"] = tool_button("🎲", f"{tabname}_random_subseed", mk)
            b["reuse_subseed"] = tool_button("♻️", f"{tabname}_reuse_subseed", mk)
            c["subseed_strength"] = mk(
                gr.Slider,
                0.0,
                1.0,
                value=0.0,
                step=0.01,
                label="Variation strength",
                elem_id=f"{tabname}_subseed_strength",
            )
        with gr.Row():
            c["seed_resize_from_w"] = mk(
                gr.Slider,
                0,
                2048,
                value=0,
                step=8,
                label="Resize seed from width",
                elem_id=f"{tabname}_seed_resize_from_w",
            )
            c["seed_resize_from_h"] = mk(
                gr.Slider,
                0,
                2048,
                value=0,
                step=8,
                label="Resize seed from height",
                elem_id=f"{tabname}_seed_resize_from_h",
            )
    return extras


def gallery_height(options: Any) -> str:
    """The results galleries' height from A1111's "Gallery height" setting (a CSS length such as 768px or
    20em); anything else (empty, or not a plain length) is "auto"."""
    value = str(getattr(options, "gallery_height", "") or "").strip()
    return value if _CSS_LENGTH.fullmatch(value) else "auto"


def results_column(
    tabname: str = "txt2img", hide_dirs: bool = False, mk: Any = None, height: str = "auto"
) -> dict[str, Any]:
    """The gallery side. `mk` (ComponentHooks.make) makes A1111's hidden generation-info pair, so the
    extensions' `after_component` callbacks see them: Config-Presets places its presets box after
    `txt2img_generation_info_button`, the last element of A1111's results column."""
    mk = mk or (lambda cls, *args, **kwargs: cls(*args, **kwargs))
    r: dict[str, Any] = {}
    with gr.Column(scale=1, elem_id=f"{tabname}_results"):
        r["progress"] = gr.HTML("", elem_id=f"{tabname}_progress", css_template=PROGRESS_CSS, js_on_load=None)
        # errors and warnings above the images: seen without scrolling
        r["error"] = gr.HTML("", elem_id=f"{tabname}_error", js_on_load=None)
        r["preview"] = gr.Image(
            label="Preview",
            elem_id=f"{tabname}_preview",
            type="pil",
            format="jpeg",
            interactive=False,
            visible=False,
            show_label=False,
            height=512,
            buttons=[],
        )
        r["gallery"] = gr.Gallery(
            label="Output",
            elem_id=f"{tabname}_gallery",
            format="png",
            type="pil",
            columns=4,
            object_fit="contain",
            height=height,
            preview=True,
            interactive=False,
            show_label=False,
        )
        r["buttons"] = output_panel.create_buttons(tabname, hide_dirs)
        r["info_html"] = gr.HTML("", elem_id=f"html_info_{tabname}", js_on_load=None)
        r["info_state"] = gr.State(None)
        # the running job's task id, which the page keeps (localStorage) until the job's end, so a page
        # opened again offers ↪️ (restore progress); "" at the end of a job
        r["task_id"] = gr.Textbox("", visible="hidden", elem_id=f"{tabname}_task_id", show_label=False)
        r["task_id"].change(
            None,
            js=f"(id) => sumiRememberTask({json.dumps(tabname)}, id)",
            inputs=r["task_id"],
            show_progress="hidden",
            api_visibility="undocumented",
        )
        # A1111's hidden pair that extensions read and click: the last job's info JSON (Processed.js()),
        # and a button that shows the infotext of the gallery image selected (selected_gallery_index()).
        r["generation_info"] = mk(
            gr.Textbox, visible="hidden", elem_id=f"generation_info_{tabname}", show_label=False
        )
        r["generation_info_button"] = mk(
            gr.Button, visible="hidden", elem_id=f"{tabname}_generation_info_button"
        )
        r["generation_info_button"].click(
            update_generation_info,
            js="(info, html, index) => [info, html, selected_gallery_index()]",
            inputs=[r["generation_info"], r["info_html"], r["info_html"]],
            outputs=[r["info_html"], r["info_html"]],
            show_progress="hidden",
            api_visibility="undocumented",
        )
    return r


def update_generation_info(generation_info: str, html_info: str, index: Any) -> tuple[str, Any]:
    """A1111's `update_generation_info`: the infotext of gallery image `index` of the last job's info
    JSON; anything unreadable keeps what is shown."""
    try:
        info = json.loads(generation_info or "")
        index = int(index)
        texts = info["infotexts"]
        if index < 0 or index >= len(texts):
            return html_info, gr.skip()
        return results.infotext_html({**info, "performance": ""}, index), gr.skip()
    except (ValueError, TypeError, KeyError, IndexError):
        return html_info, gr.skip()


def create_txt2img_tab(app: App) -> Txt2ImgTab:
    """Lay out the tab (call inside a `gr.Tab`) and wire its events."""
    c: dict[str, Any] = {}
    b: dict[str, gr.Button] = {}
    hooks = ComponentHooks(app.callbacks, app.scripts.txt2img)
    mk = hooks.make
    prompt_row(app, c, b, mk)
    with generation_tabs("txt2img"):
        with generation_tab("txt2img"):
            with gr.Column(scale=1, elem_id="txt2img_settings"):
                sampler_rows(c, mk)
                hires_final = hires_ui.create_hires(app, c, mk)  # the Hires. fix accordion
                _size_rows(c, b, mk)
                extras = seed_rows(c, b, mk, textbox=textbox_seed(app))
                restore_faces_checkbox(app, c, mk, "txt2img")
                create_tiling(app, c, mk, "txt2img")
                refiner_ui.create_refiner(app, c, mk, "txt2img")
                controlnet = create_controlnet(app, "txt2img")  # A1111: alwayson scripts under the seed
                scripts = create_scripts(app, hooks, "txt2img")
            r = results_column(
                "txt2img",
                bool(getattr(app.args, "hide_ui_dir_config", False)),
                mk,
                gallery_height(app.options),
            )
        networks = create_extra_networks(app, "txt2img")
        create_page_tabs(app, "txt2img")  # the pages extensions registered
    wire_gallery(app, networks, r["gallery"], "txt2img")
    output_panel.wire_buttons(app, "txt2img", r, r["buttons"])
    tab = Txt2ImgTab(c, r, b, controlnet, scripts)
    _wire(app, tab, extras)
    hires_ui.wire_resolution(c, hires_final)
    _wire_upscale(app, tab)
    wire_controlnet(app, controlnet, c["width"], c["height"], r["error"])
    return tab


def script_paste_fields(scripts: ScriptsUI | None) -> list[tuple[Any, Any]]:
    """Scripts' own `(component, infotext key)` pairs (A1111's `Script.infotext_fields`), for ↙️."""
    if scripts is None:
        return []
    return [
        (component, key)
        for script in scripts.runner.scripts
        for component, key in (getattr(script, "infotext_fields", None) or [])
        if isinstance(component, gr.components.Component)
    ]


def _wire(app: App, tab: Txt2ImgTab, extras: gr.Group) -> None:
    paste_names = (*paste.FIELDS, *hires_ui.HIRES_FIELDS)
    wire_tab(app, tab, extras, generate_with_hires, TAB_INPUT_NAMES, "txt2img", paste_names)


def _wire_upscale(app: App, tab: Txt2ImgTab) -> None:
    """✨ under the gallery: Generate's inputs, the gallery and the info in; Generate's outputs out."""
    c, r = tab.controls, tab.results
    control = tab.controlnet.inputs if tab.controlnet else []
    layout = GenerateInputs(len(control), tab.scripts.runner if tab.scripts else None)
    scripts = tab.scripts.inputs if tab.scripts else []
    r["buttons"]["upscale"].click(
        partial(upscale, app, layout=layout),
        inputs=[c[n] for n in TAB_INPUT_NAMES] + control + scripts + [r["gallery"], r["info_state"]],
        outputs=[r[n] for n in OUTPUTS],
        show_progress="hidden",
        concurrency_limit=None,
        api_name="txt2img_upscale",
    )


def wire_tab(
    app: App,
    tab: Txt2ImgTab,
    extras: gr.Group,
    generate_fn: Callable[..., Iterator[tuple[Any, ...]]],
    input_names: Sequence[str],
    tabname: str,
    paste_names: Sequence[str] = paste.FIELDS,
) -> None:
    """The events every generation tab has: Generate (`generate_fn` over `input_names`, ControlNet and
    the scripts), Interrupt/Skip, seeds, ⇅, gallery selection, ↙️ and the token counters."""
    c, r, b = tab.controls, tab.results, tab.buttons
    quick = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
    control = tab.controlnet.inputs if tab.controlnet else []
    layout = GenerateInputs(len(control), tab.scripts.runner if tab.scripts else None)
    gen = {
        "fn": partial(generate_fn, app, layout=layout),
        "inputs": [c[n] for n in input_names] + control + (tab.scripts.inputs if tab.scripts else []),
        "outputs": [r[n] for n in OUTPUTS],
        "show_progress": "hidden",
        "concurrency_limit": None,
        "api_name": tabname,
    }
    b["generate"].click(**gen)
    if "restore_progress" in b:
        b["restore_progress"].click(
            partial(restore_progress, app),
            js=f"() => [sumiRestoreTask({json.dumps(tabname)})]",
            inputs=r["task_id"],
            outputs=gen["outputs"],
            show_progress="hidden",
            concurrency_limit=None,
            api_visibility="undocumented",
        )
    b["interrupt"].click(partial(interrupt, app), inputs=r["task_id"], **quick)
    b["skip"].click(partial(skip, app), **quick)
    b["random_seed"].click(None, js="() => -1", outputs=c["seed"], **quick)
    b["random_subseed"].click(None, js="() => -1", outputs=c["subseed"], **quick)
    b["reuse_seed"].click(reuse_seed, inputs=r["info_state"], outputs=c["seed"], **quick)
    b["reuse_subseed"].click(
        partial(reuse_seed, key="all_subseeds"), inputs=r["info_state"], outputs=c["subseed"], **quick
    )
    b["swap"].click(
        lambda w, h: (h, w), inputs=[c["width"], c["height"]], outputs=[c["width"], c["height"]], **quick
    )
    cast(gr.Checkbox, c["seed_enable_extras"]).change(
        lambda on: gr.update(visible=bool(on)), inputs=c["seed_enable_extras"], outputs=extras, **quick
    )
    r["gallery"].select(
        select_image, inputs=r["info_state"], outputs=[r["info_html"], r["info_state"]], **quick
    )
    controlnet_fields = controlnet_paste_fields(app, tab.controlnet.units) if tab.controlnet else []
    extra_fields = script_paste_fields(tab.scripts) + controlnet_fields + refiner_ui.paste_fields(app, c)
    paste.wire_paste(app, b["paste"], c, r["error"], extra_fields, paste_names)
    counters = (cast(gr.HTML, c["token_counter"]), cast(gr.HTML, c["negative_token_counter"]))
    prompt, negative = cast(gr.Textbox, c["prompt"]), cast(gr.Textbox, c["negative_prompt"])
    wire_token_counters(app, prompt, negative, cast(gr.Slider, c["steps"]), counters)
