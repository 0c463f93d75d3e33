"""The Train tab's Dataset panel: a training folder's pictures with their captions in the gallery, one
caption edited and saved, every caption edited at once (find/replace, add and remove a tag), and
folders outside the data folder refused; plus the tag editing rules it uses."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import train_dataset_ui as ui
from modules.sumi.frontends.gradio.train_ui import create_train_tab
from modules.sumi.services.captioning.tags import add_tag, remove_tag, replace_text


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("train-dataset") / "data", start=False)


@pytest.fixture
def dataset(app):
    folder = app.paths.data_dir / "datasets" / "foxes"
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, caption) in enumerate(
        (("a.png", "fox, red, grass"), ("b.jpg", "fox, snow"), ("c.png", None))
    ):
        Image.new("RGB", (64 + i, 48), (40 * i, 90, 200)).save(folder / name)
        if caption is not None:
            (folder / name).with_suffix(".txt").write_text(caption)
    (folder / "notes.md").write_text("not a picture")
    yield folder
    for path in folder.iterdir():
        path.unlink()


def view(out: tuple) -> dict:
    return dict(zip(("gallery", "selection", "name", "caption", "status"), out, strict=True))


def captions(folder) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.txt"))}


def test_the_panel_is_a_tab_of_the_train_tab(app):
    with gr.Blocks() as page, gr.Tabs(), gr.Tab("Train"):
        create_train_tab(app, {})
    ids = {block.elem_id for block in page.blocks.values()}
    assert {
        "train_captions_tab",
        "train_captions_dir",
        "train_captions_gallery",
        "train_captions_save",
    } <= ids
    assert {"train_captions_replace_all", "train_captions_add_tag", "train_captions_remove_tag"} <= ids


def test_loading_shows_every_picture_with_its_caption(app, dataset):
    shown = view(ui.load(app, "datasets/foxes"))
    labels = [label for _, label in shown["gallery"]]
    assert labels == ["fox, red, grass", "fox, snow", "(no caption)"]
    assert [image.size for image, _ in shown["gallery"]] == [(64, 48), (65, 48), (66, 48)]
    assert "3 pictures" in shown["status"] and shown["name"] == ""


def test_a_selected_caption_is_edited_and_saved(app, dataset):
    selection = view(ui.load(app, "datasets/foxes"))["selection"]
    picked = view(ui.select(app, selection, 2))
    assert (picked["name"], picked["caption"]) == ("c.png", "")
    saved = view(ui.save(app, picked["selection"], "  a fox\nin the snow "))
    assert (dataset / "c.txt").read_text() == "a fox in the snow"
    assert "Saved c.txt" in saved["status"] and saved["caption"] == "a fox in the snow"
    assert [label for _, label in saved["gallery"]][2] == "a fox in the snow"
    nothing = view(ui.save(app, selection, "text"))  # no picture selected
    assert "Select a picture" in nothing["status"] and nothing["gallery"] == gr.skip()


def test_every_caption_is_edited_at_once(app, dataset):
    selection = view(ui.select(app, view(ui.load(app, "datasets/foxes"))["selection"], 0))["selection"]
    added = view(ui.add_to_all(app, selection, " sks ", "Start"))
    assert "Changed 3 captions" in added["status"] and added["caption"] == "sks, fox, red, grass"
    assert captions(dataset) == {"a.txt": "sks, fox, red, grass", "b.txt": "sks, fox, snow", "c.txt": "sks"}
    view(ui.add_to_all(app, selection, "photo", "End"))
    assert captions(dataset)["b.txt"] == "sks, fox, snow, photo"
    removed = view(ui.remove_from_all(app, selection, "fox"))
    assert "Changed 2 captions" in removed["status"]
    assert captions(dataset) == {
        "a.txt": "sks, red, grass, photo",
        "b.txt": "sks, snow, photo",
        "c.txt": "sks, photo",
    }
    replaced = view(ui.replace_all(app, selection, "snow", "ice"))
    assert "Changed 1 caption" in replaced["status"] and captions(dataset)["b.txt"] == "sks, ice, photo"
    assert "Type the tag" in view(ui.remove_from_all(app, selection, " "))["status"]


def test_folders_outside_the_data_folder_or_missing_are_refused(app, tmp_path):
    assert "outside the data folder" in view(ui.load(app, str(tmp_path)))["status"]
    assert "does not exist" in view(ui.load(app, "datasets/none"))["status"]
    assert "Type the dataset directory" in view(ui.load(app, ""))["status"]


def test_tag_editing_rules():
    assert add_tag("fox, red", "red") == "fox, red"  # already there
    assert add_tag("fox,red", "sks", first=False) == "fox, red, sks"
    assert add_tag("", "sks") == "sks"
    assert remove_tag("fox, red fox, fox", "fox") == "red fox"  # whole tags only, every one
    assert remove_tag("fox, red", "cat") == "fox, red"
    assert replace_text("a red fox, red", "red ", "") == "a fox, red"
    assert replace_text("fox, red", "red", "") == "fox"  # an emptied tag goes
    assert replace_text("fox", "", "x") == "fox"
