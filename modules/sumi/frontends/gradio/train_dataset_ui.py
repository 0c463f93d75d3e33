"""The Train tab's Dataset panel (Sumi): look through a training folder's pictures and captions, edit
and save one caption, and edit every caption at once (find/replace text, add or remove a tag).

The folder must be inside the data folder (or a --gradio-allowed-path one). Each action reads the
folder again, so pictures or captions changed outside (an Extras batch, the Caption step) show up;
the gallery's labels are the captions.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from modules.sumi.engine.errors import EngineError, InvalidRequestError
from modules.sumi.services.captioning.dataset import dataset_pictures, edit_captions, write_caption
from modules.sumi.services.captioning.tags import add_tag, remove_tag, replace_text

if TYPE_CHECKING:
    from modules.sumi.app import App

THUMB_SIZE = 256
MAX_SHOWN = 1000  # the gallery shows at most this many pictures (the edits reach them all)
QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}


@dataclass
class Selection:
    """What the panel shows: the folder (as typed) and the selected picture's file name."""

    folder: str = ""
    name: str = ""


def create_dataset_panel(app: App) -> None:
    """Lay out the panel (inside the Train tab's Tabs) and wire its events."""
    c: dict[str, Any] = {}
    with gr.Tab("Dataset", id="train_captions", elem_id="train_captions_tab"):
        c["state"] = gr.State(Selection())
        with gr.Row(equal_height=True):
            c["folder"] = gr.Textbox(
                label="Dataset directory",
                placeholder="A folder of pictures with a .txt caption each, inside the data folder",
                elem_id="train_captions_dir",
                scale=4,
            )
            c["load"] = gr.Button("Load", elem_id="train_captions_load", scale=1)
        c["gallery"] = gr.Gallery(
            label="Pictures", columns=6, height=360, allow_preview=False, interactive=False,
            elem_id="train_captions_gallery",
        )  # fmt: skip
        c["name"] = gr.Textbox(label="Picture", interactive=False, elem_id="train_captions_name")
        c["caption"] = gr.Textbox(label="Caption", lines=3, elem_id="train_captions_caption")
        c["save"] = gr.Button("Save caption", elem_id="train_captions_save")
        with gr.Accordion("Edit every caption", open=True, elem_id="train_captions_bulk"):
            with gr.Row(equal_height=True):
                c["find"] = gr.Textbox(label="Find", elem_id="train_captions_find")
                c["replacement"] = gr.Textbox(label="Replace with", elem_id="train_captions_replace")
                c["replace"] = gr.Button("Replace in all captions", elem_id="train_captions_replace_all")
            with gr.Row(equal_height=True):
                c["tag"] = gr.Textbox(label="Tag", elem_id="train_captions_tag")
                c["where"] = gr.Radio(
                    ["Start", "End"], value="Start", label="Add at", elem_id="train_captions_where"
                )
                c["add"] = gr.Button("Add to all captions", elem_id="train_captions_add_tag")
                c["remove"] = gr.Button("Remove from all captions", elem_id="train_captions_remove_tag")
        c["status"] = gr.HTML("", elem_id="train_captions_status")
    _wire(app, c)


def _wire(app: App, c: dict[str, Any]) -> None:
    view = [c["gallery"], c["state"], c["name"], c["caption"], c["status"]]
    c["load"].click(partial(load, app), inputs=[c["folder"]], outputs=view, **QUICK)
    c["folder"].submit(partial(load, app), inputs=[c["folder"]], outputs=view, **QUICK)

    def on_select(selection: Selection, evt: gr.SelectData) -> tuple[Any, ...]:
        return select(app, selection, int(evt.index or 0))

    c["gallery"].select(on_select, inputs=[c["state"]], outputs=view, **QUICK)
    c["save"].click(partial(save, app), inputs=[c["state"], c["caption"]], outputs=view, **QUICK)
    c["replace"].click(
        partial(replace_all, app), inputs=[c["state"], c["find"], c["replacement"]], outputs=view, **QUICK
    )
    c["add"].click(partial(add_to_all, app), inputs=[c["state"], c["tag"], c["where"]], outputs=view, **QUICK)
    c["remove"].click(partial(remove_from_all, app), inputs=[c["state"], c["tag"]], outputs=view, **QUICK)


# -- handlers: each returns (gallery, selection, picture name, caption, status) ----------------------------
def load(app: App, folder: str) -> tuple[Any, ...]:
    return _view(app, Selection(str(folder or "").strip()), "")


def select(app: App, selection: Selection, index: int) -> tuple[Any, ...]:
    """Select the `index`-th picture of the folder."""
    try:
        pictures = dataset_pictures(_folder(app, selection))
    except EngineError as exc:
        return _failed(exc)
    name = pictures[index].image.name if 0 <= index < len(pictures) else ""
    return _view(app, Selection(selection.folder, name), "")


def save(app: App, selection: Selection, caption: str) -> tuple[Any, ...]:
    try:
        if not selection.name:
            raise InvalidRequestError("Select a picture first")
        path = write_caption(_folder(app, selection) / selection.name, caption or "")
    except EngineError as exc:
        return _failed(exc)
    return _view(app, selection, f"Saved {path.name}")


def replace_all(app: App, selection: Selection, find: str, replacement: str) -> tuple[Any, ...]:
    if not find:
        return _failed(InvalidRequestError("Type the text to find"))
    return _edit_all(app, selection, lambda caption: replace_text(caption, find, replacement or ""))


def add_to_all(app: App, selection: Selection, tag: str, where: str) -> tuple[Any, ...]:
    if not (tag or "").strip():
        return _failed(InvalidRequestError("Type the tag to add"))
    return _edit_all(app, selection, lambda caption: add_tag(caption, tag, first=where != "End"))


def remove_from_all(app: App, selection: Selection, tag: str) -> tuple[Any, ...]:
    if not (tag or "").strip():
        return _failed(InvalidRequestError("Type the tag to remove"))
    return _edit_all(app, selection, lambda caption: remove_tag(caption, tag))


def _edit_all(app: App, selection: Selection, edit: Any) -> tuple[Any, ...]:
    try:
        changed = edit_captions(_folder(app, selection), edit)
    except EngineError as exc:
        return _failed(exc)
    return _view(app, selection, f"Changed {changed} caption{'' if changed == 1 else 's'}")


# -- the view ---------------------------------------------------------------------------------------------
def _folder(app: App, selection: Selection) -> Path:
    if not selection.folder:
        raise InvalidRequestError("Type the dataset directory and press Load")
    try:
        return app.paths.confine(selection.folder)
    except ValueError as exc:
        raise InvalidRequestError(f"Dataset directory: {exc}") from exc


def _view(app: App, selection: Selection, message: str) -> tuple[Any, ...]:
    """The folder's pictures with their captions, the selected one's caption, and `message`."""
    try:
        pictures = dataset_pictures(_folder(app, selection))
    except EngineError as exc:
        return _failed(exc)
    shown = [(_thumbnail(p.image), p.caption or "(no caption)") for p in pictures[:MAX_SHOWN]]
    chosen = next((p for p in pictures if p.image.name == selection.name), None)
    count = f"{len(pictures)} pictures" + (
        f", the first {MAX_SHOWN} shown" if len(pictures) > MAX_SHOWN else ""
    )
    note = f"{message}. {count}" if message else count
    return (
        shown,
        Selection(selection.folder, chosen.image.name if chosen else ""),
        chosen.image.name if chosen else "",
        chosen.caption if chosen else "",
        f'<div class="sumi-note">{html.escape(note)}</div>',
    )


def _failed(exc: Exception) -> tuple[Any, ...]:
    message = f'<div class="sumi-error">{html.escape(str(exc))}</div>'
    return gr.skip(), gr.skip(), gr.skip(), gr.skip(), message


def _thumbnail(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_SIZE, THUMB_SIZE))
            return image.convert("RGB")
    except (OSError, Image.DecompressionBombError):
        return Image.new("RGB", (THUMB_SIZE // 4, THUMB_SIZE // 4), (128, 128, 128))  # unreadable: grey
