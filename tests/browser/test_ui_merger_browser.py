"""The Checkpoint Merger tab in Chromium against a real server: pick two models, a block-weight preset
(the curve is drawn), merge, and find the new checkpoint listed; a merge that cannot be done says why
and writes nothing; the LoRA tools bake a LoRA into a checkpoint and resize one."""

from __future__ import annotations

import pytest

from modules.sumi.engine.tiny_models import tiny
from tests.app_support import running_server
from tests.browser_support import open_page, set_number, wait_text
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import write_tiny_checkpoint


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("sumi-merger")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_tiny_checkpoint(folder / "alpha.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "beta.safetensors", "SD1", seed=2)
    write_tiny_checkpoint(folder / "xl.safetensors", "SDXL")
    (data / "models" / "Lora").mkdir(parents=True)
    tn.save(data / "models" / "Lora" / "style.safetensors", tn.lora_state_dict(tiny("SD1", seed=1), rank=4))
    with running_server(data) as srv:
        yield srv


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option).first.click()


def test_a_block_weighted_merge_from_the_tab_is_saved_and_listed(server, chromium):
    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Checkpoint Merger").click()
        choose(page, "modelmerger_primary_model_name", "alpha")
        choose(page, "modelmerger_secondary_model_name", "xl")
        page.fill("#modelmerger_custom_name input, #modelmerger_custom_name textarea", "mixed")
        page.click("#modelmerger_merge")
        wait_text(page, "#modelmerger_result", "Not merged: the models are of different families")
        assert not (server.data_dir / "models" / "Stable-diffusion" / "mixed.safetensors").exists()

        choose(page, "modelmerger_secondary_model_name", "beta")
        page.click("#modelmerger_block_weights_accordion > button")
        choose(page, "modelmerger_block_preset", "GRAD_V")
        page.wait_for_selector("#modelmerger_block_curve polyline")
        assert page.locator("#modelmerger_block_curve circle").count() == 25
        page.click("#modelmerger_merge")
        wait_text(page, "#modelmerger_result", "Checkpoint saved to")
        assert (server.data_dir / "models" / "Stable-diffusion" / "mixed.safetensors").is_file()
        assert any(title.startswith("mixed.safetensors") for title in server.app.checkpoints.titles())
        page.click("#modelmerger_primary_model_name input")
        assert page.get_by_role("option", name="mixed.safetensors").count() == 1
        page.keyboard.press("Escape")
        page.fill("#modelmerger_custom_name input, #modelmerger_custom_name textarea", "trial")
        page.click("#modelmerger_try")
        wait_text(page, "#modelmerger_result", "Loaded 'trial (in memory)' for trying")
        assert not (server.data_dir / "models" / "Stable-diffusion" / "trial.safetensors").exists()
        assert server.app.models.active.checkpoint.title == "trial (in memory)"


def test_the_lora_tools_bake_and_resize_from_the_tab(server, chromium):
    with open_page(chromium, server.url) as page:
        page.get_by_role("tab", name="Checkpoint Merger").click()
        page.get_by_role("tab", name="LoRA").click()
        choose(page, "lora_bake_checkpoint", "alpha")
        page.fill("#lora_bake_tags textarea", "<lora:style:0.6>")
        page.fill("#lora_bake_name textarea", "alpha-style")
        page.click("#lora_bake_run")
        wait_text(page, "#lora_tools_result", "Checkpoint saved to")
        assert (server.data_dir / "models" / "Stable-diffusion" / "alpha-style.safetensors").is_file()
        page.get_by_text("Resize a LoRA").click()
        choose(page, "lora_resize_lora", "style")
        page.click("#lora_resize_run")
        wait_text(page, "#lora_tools_result", "Not saved: style is rank 4")
        set_number(page, "lora_resize_rank", 2)
        page.click("#lora_resize_run")
        wait_text(page, "#lora_tools_result", "LoRA saved to")
        assert (server.data_dir / "models" / "Lora" / "style-r2.safetensors").is_file()
