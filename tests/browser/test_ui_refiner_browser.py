"""The Refiner accordion in Chromium: tick it, choose the refiner, Generate, and the infotext names it;
↙️ on that infotext restores the accordion after it was cleared."""

from __future__ import annotations

import json

from tests.app_support import running_server
from tests.browser_support import generate, open_page, set_number, small_job, wait_value
from tests.fixtures.tiny_models import write_tiny_checkpoint


def test_refiner_accordion_generates_and_pastes_back(tmp_path, chromium):
    data = tmp_path / "data"
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_tiny_checkpoint(folder / "base.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "fine.safetensors", "SD1", seed=2)
    (data / "config.json").write_text(json.dumps({"sd_model_checkpoint": "base.safetensors"}))
    with running_server(data) as server, open_page(chromium, server.url) as page:
        small_job(page, "a refined lighthouse", steps=4)
        page.click("#txt2img_enable > button")
        page.check("#txt2img_enable-checkbox input")
        page.click("#txt2img_checkpoint input")
        page.get_by_role("option", name="fine.safetensors", exact=False).first.click()
        set_number(page, "txt2img_switch_at", 0.5)
        info = generate(page, "Refiner: fine")
        assert "Refiner switch at: 0.5" in info and "Model: base" in info
        active = server.app.models.active
        assert active is not None and active.checkpoint.name == "base.safetensors"
        page.uncheck("#txt2img_enable-checkbox input")
        set_number(page, "txt2img_switch_at", 0.8)
        page.fill("#txt2img_prompt textarea", "")
        page.click("#paste")  # the last generation's params.txt
        wait_value(page, "#txt2img_switch_at input[type=number]", "0.5")
        assert page.is_checked("#txt2img_enable-checkbox input")
