"""img2img's 📎 Interrogate CLIP and 📦 Interrogate DeepBooru buttons: A1111's element ids in the tools
row, the picture of each sub-tab captioned into the prompt, the Batch sub-tab's folder captioned into
.txt files, and missing models or pictures shown in the message area."""

from __future__ import annotations

import shutil

import gradio as gr
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import img2img as ui
from modules.sumi.frontends.gradio.interrogate_ui import INPUTS, interrogate
from tests.fixtures.tiny_captioners import write_blip, write_deepdanbooru


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("interrogate-ui") / "data", start=False)
    # the tiny tagger sees "red_hair" in everything; the tiny captioner says "fox fox"
    write_deepdanbooru(
        app.paths.models_dir / "torch_deepdanbooru" / "model-resnet_custom_v3.pt",
        ["red_hair", "blurry"],
        logits=[3.0, -3.0],
    )
    app.options.set("interrogate_clip_min_length", 1)
    app.options.set("interrogate_clip_max_length", 3)
    return app


def editor(picture: Image.Image) -> dict:
    return {"background": picture.convert("RGBA"), "layers": [], "composite": picture.convert("RGBA")}


def click(app, model: str, mode: int, **values):
    """The button's handler with the controls' values (INPUTS after `mode`), as Gradio calls it."""
    given = [values.get(name) for name in INPUTS[1:]]
    return interrogate(app, model, ui.mode_picture, mode, *given)


def test_the_buttons_sit_in_the_img2img_tools_row_with_a1111s_ids(app):
    with gr.Blocks() as page, gr.Tabs(), gr.Tab("img2img", id="img2img"):
        tab = ui.create_img2img_tab(app)
    assert (tab.buttons["interrogate"].elem_id, tab.buttons["deepbooru"].elem_id) == (
        "interrogate",
        "deepbooru",
    )
    assert (tab.buttons["interrogate"].value, tab.buttons["deepbooru"].value) == ("📎", "📦")
    triggers = {target[0] for fn in page.fns.values() for target in fn.targets}
    assert {tab.buttons["interrogate"]._id, tab.buttons["deepbooru"]._id} <= triggers


def test_each_sub_tab_s_picture_is_captioned_into_the_prompt(app):
    picture = Image.new("RGB", (40, 30), "red")
    assert click(app, "deepdanbooru", 0, init_img=picture) == ("red hair", "")
    assert click(app, "deepdanbooru", 1, sketch=editor(picture))[0] == "red hair"
    assert click(app, "deepdanbooru", 2, init_img_with_mask=editor(picture))[0] == "red hair"
    assert click(app, "deepdanbooru", 3, inpaint_color_sketch=editor(picture))[0] == "red hair"
    assert click(app, "deepdanbooru", 4, init_img_inpaint=picture)[0] == "red hair"
    prompt, note = click(app, "deepdanbooru", 1, init_img=picture)  # the Sketch tab is empty
    assert prompt == gr.update() and "put a picture" in note


def test_a_missing_model_is_a_message_naming_where_it_goes(app):
    prompt, note = click(app, "clip", 0, init_img=Image.new("RGB", (8, 8)))
    assert prompt == gr.update() and "sumi-error" in note and "BLIP" in note
    folder = write_blip(app.paths.models_dir / "BLIP" / "base", word="fox")
    try:
        assert click(app, "clip", 0, init_img=Image.new("RGB", (8, 8))) == ("fox fox", "")
    finally:
        shutil.rmtree(folder)


def test_batch_captions_the_input_folder_into_text_files(app):
    source = app.paths.data_dir / "batch-in"
    source.mkdir()
    for name in ("one.png", "two.png"):
        Image.new("RGB", (16, 16)).save(source / name)
    prompt, note = click(
        app, "deepdanbooru", 5, batch_input_dir="batch-in", batch_output_dir="batch-captions"
    )
    assert prompt == gr.update() and "Captioned 2 pictures" in note
    out = app.paths.data_dir / "batch-captions"
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "one.txt": "red hair\n",
        "two.txt": "red hair\n",
    }
    _, note = click(app, "deepdanbooru", 5, batch_input_dir="/etc")
    assert "sumi-error" in note and "outside the data folder" in note
    _, note = click(app, "deepdanbooru", 5)
    assert "input directory" in note
