"""The ↙️ paste button in Chromium: it restores the last generation (from params.txt when the prompt is
empty) and a typed A1111 infotext, and leaves a plain prompt alone. The mapping itself is tested in
tests/frontends/gradio/test_ui_paste.py."""

from __future__ import annotations

import re

from tests.browser_support import generate, open_page, set_number, small_job, wait_text, wait_value
from tests.fixtures.infotexts import A1111_INFOTEXT


def test_paste_button_in_the_browser(demo_server, chromium):
    (demo_server.data_dir / "params.txt").unlink(missing_ok=True)  # the shared server's last job wrote one
    with open_page(chromium, demo_server.url) as page:
        _paste_last_generation(page, demo_server)
        _paste_typed_infotext(page)


def _paste_last_generation(page, server) -> None:
    small_job(page, "a paste test lighthouse")
    info = generate(page, "Steps: 2")
    seed = re.search(r"Seed: (\d+)", info).group(1)
    assert (server.data_dir / "params.txt").is_file()
    page.fill("#txt2img_prompt textarea", "")
    set_number(page, "txt2img_steps", 7)
    wait_value(page, "#txt2img_steps input[type=number]", "7")
    page.click("#paste")
    wait_value(page, "#txt2img_prompt textarea", "a paste test lighthouse")
    wait_value(page, "#txt2img_steps input[type=number]", "2")
    wait_value(page, "#txt2img_seed input", seed)
    assert page.input_value("#txt2img_width input[type=number]") == "64"


def _paste_typed_infotext(page) -> None:
    page.fill("#txt2img_prompt textarea", A1111_INFOTEXT)
    page.click("#paste")
    wait_value(page, "#txt2img_prompt textarea", "masterpiece, a castle on a hill, (sunset:1.2)")
    wait_value(page, "#txt2img_neg_prompt textarea", "blurry, lowres")
    wait_value(page, "#txt2img_steps input[type=number]", "28")
    wait_value(page, "#txt2img_seed input", "3735928559")
    wait_value(page, "#txt2img_width input[type=number]", "640")
    wait_value(page, "#txt2img_height input[type=number]", "448")
    wait_value(page, "#txt2img_cfg_scale input[type=number]", "6.5")
    assert page.input_value("#txt2img_sampling input") == "DPM++ 2M"
    assert page.input_value("#txt2img_scheduler input") == "Automatic"
    # variation values: the Extra checkbox is ticked and the variation controls show
    page.wait_for_selector("#txt2img_seed_extras", state="visible")
    assert page.is_checked("#txt2img_subseed_show input")
    wait_value(page, "#txt2img_subseed input", "42")
    wait_value(page, "#txt2img_subseed_strength input[type=number]", "0.25")
    note = page.inner_text("#txt2img_error")
    assert "Clip skip: 2" in note and "ENSD: 31337" in note
    # a plain prompt is left as it is
    page.fill("#txt2img_prompt textarea", "only a prompt")
    page.click("#paste")
    wait_text(page, "#txt2img_error", "no generation parameters")
    assert page.input_value("#txt2img_prompt textarea") == "only a prompt"
    assert page.input_value("#txt2img_steps input[type=number]") == "28"
