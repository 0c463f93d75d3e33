"""The Train tab in Chromium: create an embedding, train it on a folder of captioned pictures with the
loss plot and samples showing, then train a LoRA from its panel; the files appear where the prompt
finds them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from tests.app_support import running_server
from tests.browser_support import open_page, set_number, wait_text

OUTPUT = "#ti_output textarea, #ti_output input"


def wait_output(page, text: str) -> str:
    """Wait until the run's status box says `text`; its value."""
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.value || '').includes(t)",
        arg=[OUTPUT, text],
        timeout=120_000,
    )
    return page.locator(OUTPUT).first.input_value()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server: these tests write embeddings and LoRA files the other pages would list."""
    with running_server(tmp_path_factory.mktemp("train-server") / "data") as server:
        dataset = server.data_dir / "dataset"
        dataset.mkdir()
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            Image.new("RGB", (64, 64), colour).save(dataset / f"{name}.png")
            (dataset / f"{name}.txt").write_text(f"a {name} square", encoding="utf-8")
        yield server


@pytest.fixture
def page(server, chromium):
    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Train", exact=True).first.click()
        yield page


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()


def test_an_embedding_created_and_trained_in_the_tab_shows_its_loss_and_samples(page, server):
    page.get_by_role("tab", name="Create embedding").click()
    page.fill("#train_new_embedding_name input, #train_new_embedding_name textarea", "sumi-square")
    page.click("#train_create_embedding")
    wait_output(page, "Created: sumi-square.pt")

    page.get_by_role("tab", name="Train", exact=True).nth(1).click()
    choose(page, "train_embedding", "sumi-square")
    page.fill("#train_dataset_directory textarea, #train_dataset_directory input", "dataset")
    choose(page, "train_template_file", "subject_filewords.txt")
    for elem_id, value in {
        "train_training_width": 64,
        "train_training_height": 64,
        "train_steps": 4,
        "train_create_image_every": 2,
        "train_save_embedding_every": 0,
    }.items():
        set_number(page, elem_id, value)
    page.click("#train_train_embedding")
    text = wait_output(page, "Training finished")
    assert "step 4/4" in text and "loss" in text
    page.wait_for_function("() => document.querySelectorAll('#train_samples img').length >= 2")
    page.locator("#train_loss_plot canvas, #train_loss_plot svg").first.wait_for()
    data = torch.load(server.data_dir / "embeddings" / "sumi-square.pt", weights_only=True)
    assert data["step"] == 4
    assert "embeddings/sumi-square.pt" in page.inner_text("#ti_error")


def test_a_lora_trained_in_its_panel_lands_in_models_lora_with_kohya_metadata(page, server):
    page.get_by_role("tab", name="LoRA", exact=True).click()
    page.fill("#train_lora_output_name input, #train_lora_output_name textarea", "squares")
    page.fill("#train_lora_data_root textarea, #train_lora_data_root input", "dataset")
    for elem_id, value in {
        "train_lora_rank": 4,
        "train_lora_steps": 3,
        "train_lora_width": 64,
        "train_lora_height": 64,
    }.items():
        set_number(page, elem_id, value)
    page.click("#train_lora_train")
    text = wait_output(page, "Training finished")
    assert "lora 'squares'" in text and "step 3/3" in text
    path = server.data_dir / "models" / "Lora" / "squares.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        assert any(k.startswith("lora_unet_") for k in f.keys())  # noqa: SIM118  (safe_open has no __iter__)
    assert metadata["ss_network_dim"] == "4" and metadata["ss_steps"] == "3"


def test_a_missing_dataset_folder_is_named_in_red_and_nothing_is_queued(page, server):
    page.get_by_role("tab", name="LoRA", exact=True).click()
    page.fill("#train_lora_output_name input, #train_lora_output_name textarea", "nothing")
    page.fill("#train_lora_data_root textarea, #train_lora_data_root input", "no-such-folder")
    page.click("#train_lora_train")
    error = wait_text(page, "#ti_error .sumi-error", "no-such-folder")
    assert error
    assert not (server.data_dir / "models" / "Lora" / "nothing.safetensors").exists()


def test_every_train_panel_has_its_tab_in_view_on_a_1280_wide_window(demo_server, chromium):
    """Gradio hides tabs that do not fit behind a "..." menu; on a common laptop width none is hidden."""
    with open_page(chromium, demo_server.url, width=1280) as page:
        page.get_by_role("tab", name="Train", exact=True).first.click()
        panels = (
            "Create embedding",
            "Create hypernetwork",
            "Train",
            "LoRA",
            "Fine-tune",
            "ControlNet",
            "Dataset",
        )
        for name in panels:
            tab = page.locator("#train_tabs").get_by_role("tab", name=name, exact=True)
            tab.wait_for(state="visible", timeout=10_000)
