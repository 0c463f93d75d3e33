"""The Train tab's Fine-tune / DreamBooth panel in Chromium: a few steps on the demo model, then the
checkpoint is among the files written and in the checkpoint dropdown after a refresh."""

from __future__ import annotations

import re

import pytest
from PIL import Image
from safetensors import safe_open

from tests.app_support import running_server
from tests.browser_support import open_page, set_number

OUTPUT = "#ti_output textarea, #ti_output input"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server: the test writes a checkpoint the other pages would list."""
    with running_server(tmp_path_factory.mktemp("finetune-server") / "data") as server:
        dataset = server.data_dir / "dogs"
        dataset.mkdir()
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            Image.new("RGB", (64, 64), colour).save(dataset / f"{name}.png")
        yield server


def test_a_checkpoint_trained_in_its_panel_is_listed_with_its_recipe(server, chromium):
    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Train", exact=True).first.click()
        page.get_by_role("tab", name="Fine-tune", exact=True).click()
        page.fill("#train_finetune_output_name input, #train_finetune_output_name textarea", "sks-dog")
        page.fill(
            "#train_finetune_instance_prompt input, #train_finetune_instance_prompt textarea", "sks dog"
        )
        page.fill("#train_finetune_data_root textarea, #train_finetune_data_root input", "dogs")
        for elem_id, value in {
            "train_finetune_steps": 2,
            "train_finetune_width": 64,
            "train_finetune_height": 64,
        }.items():
            set_number(page, elem_id, value)
        page.click("#train_finetune_train")
        page.wait_for_function(
            "([s, t]) => (document.querySelector(s)?.value || '').includes(t)",
            arg=[OUTPUT, "Training finished"],
            timeout=120_000,
        )
        text = page.locator(OUTPUT).first.input_value()
        assert "finetune 'sks-dog'" in text and "step 2/2" in text
        assert "models/Stable-diffusion/sks-dog.safetensors" in page.inner_text("#ti_error")
        page.click("#refresh_sd_model_checkpoint")
        page.click("#setting_sd_model_checkpoint input")
        page.get_by_role("option", name=re.compile(r"^sks-dog\.safetensors")).first.wait_for()
    path = server.data_dir / "models" / "Stable-diffusion" / "sks-dog.safetensors"
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    assert metadata["ss_steps"] == "2" and metadata["ss_instance_prompt"] == "sks dog"
