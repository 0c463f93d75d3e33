"""A1111's `ui_common.create_output_panel` / `save_files` for extensions' tabs (deforum, images-browser,
agent-scheduler call them) go through Sumi's own output panel: the same 💾/🗜️ code (`log.csv`, infotexts,
A1111's zip name) reached from A1111's generation info JSON and selected index."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import gradio as gr
import pytest
from PIL import Image

INFOTEXTS = [
    "a red cat\nSteps: 2, Sampler: Euler, Seed: 5, Size: 8x8",
    "a red cat\nSteps: 2, Sampler: Euler, Seed: 6, Size: 8x8",
]


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def gallery(app):
    """Two images in the outputs folder, as an extension's gallery sends them."""
    paths = []
    for i, colour in enumerate(("red", "blue")):
        path = app.paths.outputs_dir / "ext" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(path)
        paths.append(str(path))
    return paths


def generation_info(**extra) -> str:
    data = {"infotexts": INFOTEXTS, "index_of_first_image": 0, "all_seeds": [5, 6], "batch_size": 2}
    return json.dumps({**data, "width": 8, "height": 8, "steps": 2, "sampler_name": "Euler", **extra})


def test_save_files_saves_the_selected_image_with_a1111s_log_row(app, gallery):
    from modules import ui_common

    update, note = ui_common.save_files(generation_info(), gallery, False, 1)
    saved = update["value"]
    assert len(saved) == 1 and saved[0].endswith("-6.png") and "Saved:" in note
    assert Image.open(saved[0]).getpixel((0, 0)) == (0, 0, 255)
    assert Image.open(saved[0]).info["parameters"] == INFOTEXTS[1]
    rows = list(csv.reader((app.paths.resolve(app.options.outdir_save) / "log.csv").open(encoding="utf8")))
    assert rows[0][:3] == ["prompt", "seed", "width"] and rows[-1][:4] == ["a red cat", "6", "8", "8"]


def test_zip_of_all_images_comes_first_named_by_a1111s_pattern(app, gallery):
    from modules import ui_common

    update, _ = ui_common.save_files(generation_info(), gallery, True, -1)
    zipped, *files = update["value"]
    assert zipped.endswith("-6.zip")  # "[seed]-[seed_last]": the batch's first and last seeds
    assert len(files) == 2 and sorted(zipfile.ZipFile(zipped).namelist()) == sorted(
        f.rsplit("/", 1)[-1] for f in files
    )


def test_bad_generation_info_is_a_message_not_a_crash(app, gallery):
    from modules import ui_common

    update, note = ui_common.save_files("not json", gallery, False, 0)
    assert update["visible"] is False and "Could not save: bad generation info" in note


def test_the_panels_save_button_runs_the_shared_save(app, gallery):
    from modules import ui_common

    with gr.Blocks() as demo:
        panel = ui_common.create_output_panel("myext", "outputs/ext")
    assert panel.generation_info.elem_id == "generation_info_myext"
    assert panel.html_log.elem_id == "html_log_myext" and panel.infotext.elem_id == "html_info_myext"
    ids = {block.elem_id: block._id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"save_myext", "save_zip_myext", "myext_open_folder"} <= set(ids)
    # A1111's group around the gallery: page scripts put the progress bar there (requestProgress)
    container = next(
        b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "myext_gallery_container"
    )
    assert isinstance(container, gr.Group) and panel.gallery in container.children
    assert "myext_send_to_img2img" not in ids  # send-to buttons are for Sumi's own tabs only
    save = next(f for f in demo.fns.values() if (ids["save_myext"], "click") in f.targets)
    assert [c._id for c in save.inputs[:2]] == [panel.generation_info._id, panel.gallery._id]
    assert save.fn is not None
    update, note = save.fn(generation_info(), gallery, 0)
    assert update["value"][0].endswith("-5.png") and "Saved:" in note
    folder = next(f for f in demo.fns.values() if (ids["myext_open_folder"], "click") in f.targets)
    assert folder.fn is not None and str(app.paths.resolve("outputs/ext")) in folder.fn()


def test_save_files_follows_the_log_csv_and_quality_settings(app, gallery):
    from modules import ui_common

    log = app.paths.resolve(app.options.outdir_save) / "log.csv"
    before = log.read_text(encoding="utf8") if log.exists() else ""
    app.settings.set({"save_write_log_csv": False, "samples_format": "jpg", "jpeg_quality": 30})
    try:
        update, _ = ui_common.save_files(generation_info(), gallery, False, 0)
    finally:
        app.settings.set({"save_write_log_csv": True, "samples_format": "png", "jpeg_quality": 80})
    (saved,) = update["value"]
    reference = io.BytesIO()
    Image.new("RGB", (8, 8)).save(reference, "JPEG", quality=30)
    with Image.open(saved) as image, Image.open(reference) as expected:
        assert image.format == "JPEG" and image.quantization == expected.quantization
    assert (log.read_text(encoding="utf8") if log.exists() else "") == before  # no row written
