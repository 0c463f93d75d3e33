"""The buttons under a results gallery (txt2img and img2img), as A1111's `ui_common.create_output_panel`:

- 📂 opens the output folder on the machine running Sumi (opt `open_dir_button_choice`: the selected
  image's folder, or the tab's output root). When the server cannot open a folder (no desktop, or
  `--hide-ui-dir-config`), the note says which folder it is instead.
- 💾 saves the gallery's images (only the selected one with opt `save_selected_only`, A1111's default)
  into opt `outdir_save` (`log/images`) with their infotext, appends one row to `log.csv` there
  (A1111's columns) and offers the files for download.
- 🗜️ does the same and also packs the files into a zip (A1111's `grid_zip_filename_pattern` name),
  offered for download.
- "Send to img2img" / "Send to inpaint" copy the selected image and its parameters (its infotext) into
  the img2img tab (the img2img or Inpaint sub-tab) and switch to it. They are wired by `wire_send_to`
  once both tabs exist. "Send to extras" copies the selected image into the Extras tab's single image
  and switches to it (wired by `extras.wire_send_to_extras`).
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from modules.sumi.frontends.gradio import results
from modules.sumi.frontends.gradio.paste_buttons import image_from_url_text, readable_roots
from modules.sumi.services.images.a1111_save import FilenameGenerator, save_image
from modules.sumi.services.jobs import infotext

if TYPE_CHECKING:
    from modules.sumi.app import App

QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}
LOG_COLUMNS = [
    "prompt",
    "seed",
    "width",
    "height",
    "sampler",
    "cfgs",
    "steps",
    "filename",
    "negative_prompt",
    "sd_model_name",
    "sd_model_hash",
]
# Targets of the send-to buttons: (button label, A1111's key, img2img sub-tab id)
SEND_TO = (
    ("Send to img2img", "img2img", "img2img_img2img_tab"),
    ("Send to inpaint", "inpaint", "img2img_inpaint_tab"),
    ("Send to extras", "extras", "extras_single_tab"),
)
OUTDIR_SAMPLES = {
    "txt2img": "outdir_txt2img_samples",
    "img2img": "outdir_img2img_samples",
    "extras": "outdir_extras_samples",
}


def create_buttons(tabname: str, hide_dirs: bool = False, send_to: bool = True) -> dict[str, Any]:
    """The row of buttons, the download list and the note (call under the gallery); 📂 is left out
    with `hide_dirs` (--hide-ui-dir-config), as in A1111, and the send-to buttons without `send_to`."""
    b: dict[str, Any] = {}
    with gr.Row(elem_id=f"image_buttons_{tabname}", elem_classes=["image-buttons"]):
        kwargs = {"elem_classes": ["tool"], "size": "sm", "min_width": 40, "scale": 0}
        b["open_folder"] = gr.Button("📂", elem_id=f"{tabname}_open_folder", visible=not hide_dirs, **kwargs)
        b["save"] = gr.Button("💾", elem_id=f"save_{tabname}", **kwargs)
        b["save_zip"] = gr.Button("🗜️", elem_id=f"save_zip_{tabname}", **kwargs)
        if tabname == "txt2img":  # A1111 1.8+: "Create an upscaled version of the current image using
            # hires fix settings" (the hires pass again on the selected image)
            b["upscale"] = gr.Button("✨", elem_id="txt2img_upscale", **kwargs)
        for label, key, _ in SEND_TO if send_to else ():
            b[f"send_{key}"] = gr.Button(label, elem_id=f"{tabname}_send_to_{key}", size="sm", scale=1)
    b["download"] = gr.File(
        None, file_count="multiple", interactive=False, show_label=False, visible=False,
        elem_id=f"download_files_{tabname}",
    )  # fmt: skip
    b["log"] = gr.HTML("", elem_id=f"html_log_{tabname}", js_on_load=None)
    return b


def wire_buttons(app: App, tabname: str, r: dict[str, Any], b: dict[str, Any]) -> None:
    gallery, info = r["gallery"], r["info_state"]
    b["open_folder"].click(
        lambda i: open_folder_note(app, tabname, i), inputs=info, outputs=b["log"], **QUICK
    )
    for button, make_zip in ((b["save"], False), (b["save_zip"], True)):
        button.click(
            lambda images, i, z=make_zip: save_files_update(app, images, i, make_zip=z),
            inputs=[gallery, info],
            outputs=[b["download"], b["log"]],
            concurrency_limit=None,
            show_progress="hidden",
            api_visibility="undocumented",
        )


# -- 📂 ------------------------------------------------------------------------------------------------
def output_folder(app: App, tabname: str, info: dict[str, Any] | None) -> Path:
    """The folder 📂 opens: today's folder of the tab's images ("Subdirectory"), else the tab's output root."""
    o = app.options
    root = app.paths.resolve(
        o.outdir_samples or getattr(o, OUTDIR_SAMPLES.get(tabname, "outdir_txt2img_samples"))
    )
    choice = str(app.options.data.get("open_dir_button_choice", "Subdirectory"))
    today = root / datetime.now().strftime("%Y-%m-%d")
    if choice.startswith("Subdirectory") and o.save_to_dirs and today.is_dir():
        return today
    return root


def open_folder_note(app: App, tabname: str, info: dict[str, Any] | None) -> str:
    return folder_note(app, output_folder(app, tabname, info))


def folder_note(app: App, folder: Path) -> str:
    """Open `folder` on the server, or say where it is when the server cannot (or may not)."""
    if getattr(app.args, "hide_ui_dir_config", False):
        return _note("Opening folders is turned off on this server (--hide-ui-dir-config).")
    if not folder.is_dir():
        return _note(f"Folder {folder} does not exist yet: generate an image first.")
    if open_folder(folder):
        return _note(f"Opened {folder}")
    return _note(f"Images are in {folder} (this server has no desktop to open it in).")


def open_folder(folder: Path) -> bool:
    """Open `folder` in the server's file manager, as A1111 does; False when there is none."""
    if sys.platform == "win32":
        os.startfile(folder)  # type: ignore[attr-defined]  # noqa: S606
        return True
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None or (sys.platform != "darwin" and not os.environ.get("DISPLAY")):
        return False
    subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    return True


# -- 💾 / 🗜️ -------------------------------------------------------------------------------------------
def save_files_update(app: App, images: Any, info: dict[str, Any] | None, make_zip: bool) -> tuple[Any, str]:
    try:
        files, note = save_files(app, images, info, make_zip=make_zip)
    except (OSError, ValueError) as exc:
        return gr.update(visible=False), results.error_html(f"Could not save: {exc}")
    return gr.update(value=[str(f) for f in files], visible=bool(files)), note


def save_files(
    app: App, images: Any, info: dict[str, Any] | None, make_zip: bool = False
) -> tuple[list[Path], str]:
    """A1111's `save_files`: the gallery's images (or only the selected one) into opt `outdir_save`,
    a row in its `log.csv` (opt `save_write_log_csv`), and with `make_zip` a zip of them. Returns the files to download and a note."""
    items = list(images or [])
    texts = list((info or {}).get("infotexts") or [])
    if not items or not texts:
        return [], _note("Nothing to save: generate an image first.")
    o, data = app.options, info or {}
    first = int(data.get("index_of_first_image") or 0)
    index = results.selected_index(info)
    start = 0
    if bool(o.data.get("save_selected_only", True)) and first <= index < len(items):
        items, start = [items[index]], index
    path = app.paths.resolve(o.outdir_save or "log/images")
    path.mkdir(parents=True, exist_ok=True)
    roots = readable_roots(app.paths.outputs_dir)
    seeds, params = list(data.get("all_seeds") or []), dict(data.get("params") or {})
    prompts = list(params.get("all_prompts") or [])
    saved: list[Path] = []
    names: list[str] = []
    parsed: list[dict[str, str]] = []
    for i, item in enumerate(items, start):
        image = _image(item, roots)
        text = texts[i] if i < len(texts) else texts[0]
        parsed.append(infotext.parse_infotext(text))
        k = max(0, i - first)
        seed = seeds[k] if k < len(seeds) else parsed[-1].get("Seed")  # A1111: the infotext's seed
        prompt = prompts[k] if k < len(prompts) else parsed[-1].get("Prompt", "")
        p = _p(params, parsed[-1])
        fullfn, txt = save_image(
            o, app.paths, app.callbacks, image, str(path), "", seed=seed, prompt=prompt,
            extension=o.samples_format or "png", info=text, grid=i < first, p=p,
            save_to_dirs=bool(o.data.get("use_save_to_dirs_for_ui", False)),
        )  # fmt: skip
        saved.append(Path(fullfn))
        names.append(os.path.relpath(fullfn, path))
        if txt:
            saved.append(Path(txt))
    if bool(o.data.get("save_write_log_csv", True)):
        _log_row(path / "log.csv", parsed[0], params, names[0])
    if make_zip:  # A1111: the zip first, then the files themselves
        zip_seeds = seeds or [d.get("Seed") for d in parsed]
        saved.insert(0, _zip(app, path, saved, params, parsed[0], zip_seeds, prompts))
    return saved, _note(f"Saved: {names[0]}")


def info_from_generation_json(js_data: str, index: int) -> dict[str, Any]:
    """The gallery info `save_files` reads, from A1111's generation info JSON (`Processed.js()`, what
    an extension's `generation_info` textbox holds) and the selected image's index (-1: none)."""
    data = json.loads(js_data or "{}")
    if not isinstance(data, dict):
        raise ValueError("the generation info is not a JSON object")
    return {
        "infotexts": list(data.get("infotexts") or []),
        "index_of_first_image": int(data.get("index_of_first_image") or 0),
        "all_seeds": list(data.get("all_seeds") or []),
        "params": data,
        "selected": int(index),
    }


def save_json_update(app: App, js_data: str, images: Any, make_zip: bool, index: int) -> tuple[Any, str]:
    """A1111's `ui_common.save_files(js_data, images, do_make_zip, index)`: (files update, note)."""
    try:
        info = info_from_generation_json(js_data, index)
    except (ValueError, TypeError) as exc:
        return gr.update(visible=False), results.error_html(f"Could not save: bad generation info ({exc})")
    return save_files_update(app, images, info, make_zip)


def create_extension_panel(app: App, tabname: str, outdir: str) -> dict[str, Any]:
    """A1111's `create_output_panel` for an extension's tab: the gallery, the same 📂 💾 🗜️ buttons as
    Sumi's tabs (📂 opens `outdir`; no send-to buttons), A1111's hidden `generation_info` textbox (the
    JSON the extension's handler returns), the infotext and the log. The gallery sits in A1111's
    `<tabname>_gallery_container` group, which page scripts hand to `requestProgress` as the place of the
    progress bar (Deforum's `submit_deforum`)."""
    hide = bool(getattr(app.args, "hide_ui_dir_config", False))
    with gr.Column(elem_id=f"{tabname}_results"):
        with gr.Group(elem_id=f"{tabname}_gallery_container"):
            gallery = gr.Gallery(label="Output", show_label=False, elem_id=f"{tabname}_gallery", columns=4)
        b = create_buttons(tabname, hide_dirs=hide, send_to=False)
        info = gr.Textbox(visible=False, elem_id=f"generation_info_{tabname}")
        infotext = gr.HTML(elem_id=f"html_info_{tabname}", elem_classes="infotext")
    selected = gr.State(-1)

    def select(evt: gr.SelectData) -> int:
        return int(evt.index) if isinstance(evt.index, int) else -1

    gallery.select(select, None, selected, **QUICK)
    gallery.change(lambda: -1, None, selected, **QUICK)
    b["open_folder"].click(lambda: folder_note(app, app.paths.resolve(outdir)), outputs=b["log"], **QUICK)
    for button, make_zip in ((b["save"], False), (b["save_zip"], True)):
        button.click(
            lambda js, images, i, z=make_zip: save_json_update(app, js, images, z, i),
            inputs=[info, gallery, selected],
            outputs=[b["download"], b["log"]],
            **QUICK,
        )
    return {"gallery": gallery, "generation_info": info, "infotext": infotext, "html_log": b["log"], **b}


def _image(item: Any, roots: Sequence[Path]) -> Image.Image:
    if isinstance(item, (list, tuple)) and item:  # a gallery item (image, caption)
        item = item[0]
    image = image_from_url_text(item, roots)
    if image is None:
        raise ValueError("the gallery sent no image")
    return image


def _p(params: dict[str, Any], parsed: dict[str, str]) -> SimpleNamespace:
    """What file-name patterns read from a job (A1111 builds a `MyObject` from the generation info)."""
    size = (parsed.get("Size-1"), parsed.get("Size-2"))
    return SimpleNamespace(
        steps=params.get("steps", parsed.get("Steps")),
        cfg_scale=params.get("cfg_scale", parsed.get("CFG scale")),
        width=params.get("width", size[0]),
        height=params.get("height", size[1]),
        styles=params.get("styles") or [],
        sampler_name=params.get("sampler_name", parsed.get("Sampler")),
        scheduler=params.get("scheduler", parsed.get("Schedule type")),
        sd_model_name=params.get("sd_model_name", parsed.get("Model")),
        sd_model_hash=params.get("sd_model_hash", parsed.get("Model hash")),
        job_timestamp=params.get("job_timestamp", ""),
        clip_skip=params.get("clip_skip", 1),
        denoising_strength=params.get("denoising_strength", parsed.get("Denoising strength")),
        batch_size=params.get("batch_size", 1),
        all_prompts=params.get("all_prompts") or [],
        all_seeds=[],
        prompt=params.get("prompt", parsed.get("Prompt", "")),
        negative_prompt=params.get("negative_prompt", parsed.get("Negative prompt", "")),
        n_iter=params.get("n_iter", 1),
        sd_vae_name=params.get("sd_vae_name"),
        user=params.get("user"),
    )


def _log_row(log: Path, parsed: dict[str, str], params: dict[str, Any], filename: str) -> None:
    new = not log.exists()
    with log.open("a", encoding="utf8", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(LOG_COLUMNS)
        writer.writerow(
            [
                parsed.get("Prompt", ""),
                parsed.get("Seed", ""),
                params.get("width", parsed.get("Size-1", "")),
                params.get("height", parsed.get("Size-2", "")),
                params.get("sampler_name", parsed.get("Sampler", "")),
                params.get("cfg_scale", parsed.get("CFG scale", "")),
                params.get("steps", parsed.get("Steps", "")),
                filename,
                parsed.get("Negative prompt", ""),
                params.get("sd_model_name", parsed.get("Model", "")),
                params.get("sd_model_hash", parsed.get("Model hash", "")),
            ]
        )


def _zip(
    app: App,
    path: Path,
    files: list[Path],
    params: dict[str, Any],
    parsed: dict[str, str],
    seeds: list[Any],
    prompts: list[str],
) -> Path:
    p = _p(params, parsed)
    p.all_seeds = seeds
    if not p.sd_model_name:  # A1111 names the loaded model
        title = str(app.options.data.get("sd_model_checkpoint") or "")
        p.sd_model_name = Path(title.split(" [")[0]).stem if title else None
    seed = seeds[0] if seeds else None
    prompt = prompts[0] if prompts else parsed.get("Prompt", "")
    namegen = FilenameGenerator(p, seed, prompt, image=None, zip=True)
    pattern = str(
        app.options.data.get("grid_zip_filename_pattern") or "[datetime]_[[model_name]]_[seed]-[seed_last]"
    )
    name = namegen.apply(pattern).strip() or "images"
    target = path / f"{name}.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for file in files:
            archive.write(file, arcname=file.name)
    return target


def _note(message: str) -> str:
    return f'<div class="sumi-note">{html.escape(message)}</div>'
