"""Dataset preparation in Chromium: Extras' Batch from Directory with Split oversized images and Create
flipped copies turns a folder of raw pictures into a dataset, then the Train tab's Dataset panel shows
its pictures, saves an edited caption and adds a tag to every caption."""

from __future__ import annotations

import pytest
from PIL import Image

from tests.app_support import running_server
from tests.browser_support import open_page, set_number, wait_text, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server: the tests write folders the other pages do not expect."""
    with running_server(tmp_path_factory.mktemp("dataset-tools") / "data") as server:
        raw = server.data_dir / "raw"
        raw.mkdir()
        Image.new("RGB", (64, 192), (200, 40, 40)).save(raw / "tall.png")
        Image.new("RGB", (64, 64), (40, 40, 200)).save(raw / "square.png")
        yield server


@pytest.fixture
def page(server, chromium):
    with open_page(chromium, server.url) as page:
        yield page


def open_accordion(page, elem_id: str) -> None:
    page.click(f"#{elem_id} > button, #{elem_id} .label-wrap")


def test_extras_prepares_a_folder_and_the_dataset_panel_edits_its_captions(page, server):
    page.get_by_role("tab", name="Extras").click()
    page.get_by_role("tab", name="Batch from Directory").click()
    page.fill("#extras_batch_input_dir textarea, #extras_batch_input_dir input", "raw")
    page.fill("#extras_batch_output_dir textarea, #extras_batch_output_dir input", "dataset")
    page.get_by_role("tab", name="Scale to").click()
    set_number(page, "extras_upscaling_resize_w", 64)
    set_number(page, "extras_upscaling_resize_h", 64)
    for label in ("Split oversized images", "Create flipped copies"):
        page.get_by_role("button", name=label).first.click()
    page.click("#extras_generate")
    dataset = server.data_dir / "dataset"
    wait_until(lambda: dataset.is_dir() and len(list(dataset.glob("*.png"))) == 10)
    # the square and its mirror; the tall one (3 times the target) in 4 overlapping tiles, and its mirror's
    assert {Image.open(p).size for p in dataset.glob("*.png")} == {(64, 64)}
    for picture in dataset.glob("*.png"):
        picture.with_suffix(".txt").write_text("red" if picture.stem.startswith("tall") else "blue")

    page.get_by_role("tab", name="Train", exact=True).first.click()
    page.get_by_role("tab", name="Dataset", exact=True).click()
    page.fill("#train_captions_dir textarea, #train_captions_dir input", "dataset")
    page.click("#train_captions_load")
    wait_text(page, "#train_captions_status", "10 pictures")
    page.locator("#train_captions_gallery button.thumbnail-item").first.click()
    name = page.locator("#train_captions_name textarea, #train_captions_name input").first
    page.wait_for_function("e => e.value !== ''", arg=name.element_handle())
    first = name.input_value()
    page.fill("#train_captions_caption textarea", "blue, sky")
    page.click("#train_captions_save")
    wait_text(page, "#train_captions_status", "Saved")
    assert (dataset / first).with_suffix(".txt").read_text() == "blue, sky"

    page.fill("#train_captions_tag textarea, #train_captions_tag input", "sks")
    page.click("#train_captions_add_tag")
    wait_text(page, "#train_captions_status", "Changed 10 captions")
    assert all(p.read_text().startswith("sks, ") for p in dataset.glob("*.txt"))
