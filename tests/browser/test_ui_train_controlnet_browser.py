"""The Train tab's ControlNet panel in Chromium: a canny ControlNet trained on a folder of pictures with
its loss and a sample showing, then offered in txt2img's ControlNet unit model dropdown without a
restart."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from tests.app_support import running_server
from tests.browser_support import open_page, set_number

OUTPUT = "#ti_output textarea, #ti_output input"
UNIT0 = "txt2img_controlnet_ControlNet-0"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Its own server: the test writes a ControlNet the other pages would list."""
    with running_server(tmp_path_factory.mktemp("train-cn-server") / "data") as server:
        dataset = server.data_dir / "blocks"
        dataset.mkdir()
        for i in range(2):
            pixels = np.full((64, 64, 3), 20, np.uint8)
            pixels[8 + 20 * i : 36 + 20 * i, 10:50] = (200, 60, 60)
            Image.fromarray(pixels).save(dataset / f"{i}.png")
            (dataset / f"{i}.txt").write_text("a red block", encoding="utf-8")
        yield server


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).first.click()


def test_a_canny_controlnet_trained_in_its_panel_is_offered_to_the_units(server, chromium):
    with open_page(chromium, server.url, height=1400) as page:
        page.get_by_role("tab", name="Train", exact=True).first.click()
        page.get_by_role("tab", name="ControlNet", exact=True).click()
        page.fill("#train_controlnet_output_name input, #train_controlnet_output_name textarea", "blocks")
        page.fill("#train_controlnet_data_root textarea, #train_controlnet_data_root input", "blocks")
        choose(page, "train_controlnet_preprocessor", "canny")
        for elem_id, value in {
            "train_controlnet_steps": 2,
            "train_controlnet_width": 64,
            "train_controlnet_height": 64,
            "train_controlnet_create_image_every": 2,
        }.items():
            set_number(page, elem_id, value)
        page.click("#train_controlnet_train")
        page.wait_for_function(
            "s => (document.querySelector(s)?.value || '').includes('Training finished')",
            arg=OUTPUT,
            timeout=120_000,
        )
        text = page.locator(OUTPUT).first.input_value()
        assert "controlnet 'blocks'" in text and "step 2/2" in text
        page.wait_for_function("() => document.querySelectorAll('#train_samples img').length >= 1")
        assert "models/ControlNet/blocks.safetensors" in page.inner_text("#ti_error")
        with safe_open(str(server.data_dir / "models" / "ControlNet" / "blocks.safetensors"), "pt") as f:
            assert "control_model.input_hint_block.0.weight" in f.keys()  # noqa: SIM118
            assert f.metadata()["sumi_controlnet_conditioning"] == "canny (100, 200)"

        page.get_by_role("tab", name="txt2img", exact=True).first.click()
        page.click("#txt2img_controlnet > button")
        page.wait_for_selector("#txt2img_controlnet_tabs")
        page.click(f"#{UNIT0}_controlnet_model_dropdown input")
        option = page.get_by_role("option", name="blocks [", exact=False).first
        option.wait_for()
        assert option.inner_text().startswith("blocks [")
