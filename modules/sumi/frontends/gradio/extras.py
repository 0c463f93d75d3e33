"""The Extras tab (A1111's `ui_postprocessing`): Single Image, Batch Process (uploads) and Batch from
Directory on the left with the Extras scripts' controls (Upscale, face restoration, extensions'
operations) under them; Generate, the progress, the results gallery and its output panel on the right.

The job runs on the one worker queue (`app.extras`), with progress, Interrupt and Skip as the other
tabs. "Send to extras" under a gallery puts its selected image into Single Image and opens the tab.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from modules.sumi.frontends.gradio import output_panel, results
from modules.sumi.frontends.gradio import txt2img as t2i
from modules.sumi.frontends.gradio.paste_buttons import image_from_url_text, readable_roots
from modules.sumi.services.postprocessing.service import BatchImage, ExtrasRequest, ExtrasResult

if TYPE_CHECKING:
    from modules.sumi.app import App

TAB = "extras"
QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
MODE_TABS = ("extras_single_tab", "extras_batch_process_tab", "extras_batch_directory_tab")


@dataclass
class ExtrasTab:
    controls: dict[str, Any]
    results: dict[str, Any]
    mode_tabs: gr.Tabs
    script_inputs: list[Any]


def create_extras_tab(app: App) -> ExtrasTab:
    """Lay out the tab (call inside a `gr.Tab`) and wire its events."""
    c: dict[str, Any] = {}
    hide_dirs = bool(getattr(app.args, "hide_ui_dir_config", False))
    with gr.Row(equal_height=False, elem_id="extras_row"):
        with gr.Column(scale=1, elem_id="extras_settings"):
            # which sub-tab is open, set in the page (no round trip): Generate right after reads it
            c["mode"] = gr.Number(value=0, precision=0, visible=False)
            with gr.Tabs(elem_id="mode_extras") as mode_tabs:
                with gr.Tab("Single Image", id=MODE_TABS[0], elem_id=MODE_TABS[0]) as single:
                    c["image"] = gr.Image(
                        label="Source",
                        type="pil",
                        image_mode="RGBA",
                        sources=["upload", "clipboard"],
                        elem_id="extras_image",
                        height=420,
                    )
                with gr.Tab("Batch Process", id=MODE_TABS[1], elem_id=MODE_TABS[1]) as batch:
                    c["batch"] = gr.Files(
                        label="Batch Process", file_count="multiple", elem_id="extras_image_batch"
                    )
                with gr.Tab("Batch from Directory", id=MODE_TABS[2], elem_id=MODE_TABS[2]) as folder:
                    c["input_dir"] = gr.Textbox(
                        label="Input directory",
                        placeholder="A directory on the same machine where the server is running.",
                        elem_id="extras_batch_input_dir",
                        visible=not hide_dirs,
                    )
                    c["output_dir"] = gr.Textbox(
                        label="Output directory",
                        placeholder="Leave blank to save images to the default path.",
                        elem_id="extras_batch_output_dir",
                        visible=not hide_dirs,
                    )
                    c["show_results"] = gr.Checkbox(
                        label="Show result images", value=True, elem_id="extras_show_extras_results"
                    )
            script_inputs = app.scripts.postproc.setup_ui(group=gr.Row)
        with gr.Column(scale=1, elem_id="extras_results_column"):
            with gr.Row(elem_id="extras_toprow"):
                c["generate"] = gr.Button("Generate", elem_id="extras_generate", variant="primary", size="lg")
                c["interrupt"] = gr.Button("Interrupt", elem_id="extras_interrupt", size="sm", min_width=60)
                c["skip"] = gr.Button("Skip", elem_id="extras_skip", size="sm", min_width=60)
            r = t2i.results_column(TAB, hide_dirs, height=t2i.gallery_height(app.options))
    for index, tab in enumerate((single, batch, folder)):
        tab.select(None, js=f"() => {index}", outputs=c["mode"], api_visibility="undocumented")
    output_panel.wire_buttons(app, TAB, r, r["buttons"])
    tab = ExtrasTab(c, r, mode_tabs, script_inputs)
    _wire(app, tab)
    return tab


def _wire(app: App, tab: ExtrasTab) -> None:
    c, r = tab.controls, tab.results
    c["generate"].click(
        partial(generate, app),
        inputs=[
            c["mode"],
            c["image"],
            c["batch"],
            c["input_dir"],
            c["output_dir"],
            c["show_results"],
            *tab.script_inputs,
        ],
        outputs=[r[name] for name in t2i.OUTPUTS],
        show_progress="hidden",
        concurrency_limit=None,
        api_name="extras",
    )
    c["interrupt"].click(partial(t2i.interrupt, app), inputs=r["task_id"], **QUICK)
    c["skip"].click(partial(t2i.skip, app), **QUICK)
    c["image"].change(lambda: app.scripts.postproc.image_changed(), **QUICK)
    r["gallery"].select(_select, inputs=r["info_state"], outputs=r["info_state"], **QUICK)


def _select(info: dict[str, Any] | None, evt: gr.SelectData) -> dict[str, Any] | None:
    return results.select_image(info, int(evt.index or 0))


def request_from_values(
    mode: Any,
    image: Image.Image | None,
    files: Sequence[Any] | None,
    input_dir: str | None,
    output_dir: str | None,
    show_results: bool,
    script_values: Sequence[Any],
) -> ExtrasRequest:
    """The Extras job for the tab's values (uploaded batch files are read here, with their names)."""
    batch = []
    for item in files or []:
        path = Path(str(getattr(item, "name", None) or item))
        picture = Image.open(path)
        picture.load()
        batch.append(BatchImage(picture, path.name))
    return ExtrasRequest(
        mode=int(mode or 0),
        image=image,
        images=batch,
        input_dir=str(input_dir or ""),
        output_dir=str(output_dir or ""),
        show_results=bool(show_results),
        args=list(script_values),
    )


def generate(
    app: App, mode: Any, image: Any, files: Any, input_dir: Any, output_dir: Any, show: Any, *args: Any
):
    """Gradio generator for Generate: check, queue, stream progress, show the results."""
    try:
        job = app.extras.submit(request_from_values(mode, image, files, input_dir, output_dir, show, args))
    except Exception as exc:  # a bad value: said now, nothing queued
        yield t2i.failed(exc)
        return
    yield t2i.outputs(error="", task_id=job.id)  # Interrupt on this page takes it out while it waits
    yield from t2i.stream_progress(app, job)  # a page that goes away leaves the job queued, as A1111
    yield from _finish(job)


def _finish(job: Any) -> Iterator[tuple[Any, ...]]:
    if job.future.cancelled():
        yield t2i.left_queue()
        return
    try:
        result: ExtrasResult = job.future.result()
    except Exception as exc:
        yield t2i.failed(exc)
        return
    info = {
        "infotexts": [str(i.info.get("parameters") or "") for i in result.images],
        "all_seeds": [],
        "all_subseeds": [],
        "index_of_first_image": 0,
        "warnings": list(result.warnings),
        "selected": 0,
        "params": {},
    }
    yield t2i.outputs(
        gallery=gr.update(visible=True, value=list(result.images)),
        preview=gr.update(visible=False, value=None),
        progress="",
        task_id="",
        info_html=result.html_info,
        error="",
        info_state=info,
    )


# -- Send to extras ----------------------------------------------------------------------------------
def send_to_extras(app: App, images: Any, info: dict[str, Any] | None) -> tuple[Any, ...]:
    """The selected gallery image into Single Image, that sub-tab and the Extras tab selected."""
    items = list(images or [])
    if not items:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    index = results.selected_index(info)
    item = items[index] if 0 <= index < len(items) else items[0]
    if isinstance(item, (list, tuple)):
        item = item[0]
    image = image_from_url_text(item, readable_roots(app.paths.outputs_dir))
    if image is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return image, 0, gr.Tabs(selected=MODE_TABS[0]), gr.Tabs(selected=TAB)


def wire_send_to_extras(app: App, top_tabs: gr.Tabs, source: dict[str, Any], tab: ExtrasTab) -> None:
    """Wire a results column's "Send to extras" button (txt2img's, img2img's or the Extras tab's own)."""
    source["buttons"]["send_extras"].click(
        partial(send_to_extras, app),
        inputs=[source["gallery"], source["info_state"]],
        outputs=[tab.controls["image"], tab.controls["mode"], tab.mode_tabs, top_tabs],
        **QUICK,
    )
