"""Prompt styles in Chromium: pick a style, generate with it (the prompt box keeps the user's text),
save the prompt as a new style, and paste a style into the boxes."""

from __future__ import annotations

from modules.sumi.services.settings import styles as s
from tests.app_support import running_server
from tests.browser_support import generate, open_page, small_job, wait_text


def test_browser_pick_style_generate_and_save_a_new_style(tmp_path, chromium):
    csv = 'name,prompt,negative_prompt\r\nPhoto,"photo of {prompt}, 35mm",blurry\r\n'
    (tmp_path / "styles.csv").write_bytes(b"\xef\xbb\xbf" + csv.encode("utf-8"))  # as A1111 writes it
    with running_server(tmp_path) as server, open_page(chromium, server.url) as page:
        small_job(page, "a lighthouse")
        page.click("#txt2img_styles input")
        page.get_by_role("option", name="Photo").click()
        page.keyboard.press("Escape")
        info = generate(page, "Steps: 2")
        assert "photo of a lighthouse, 35mm" in info and "blurry" in info
        assert page.input_value("#txt2img_prompt textarea") == "a lighthouse"  # the box is unchanged

        page.fill("#txt2img_prompt textarea", "watercolor, soft light")
        page.locator("#txt2img_style_name input, #txt2img_style_name textarea").fill("Watercolor")
        page.click("#txt2img_style_create")
        wait_text(page, "#txt2img_styles_status", "Watercolor")
        saved = {x.name: x.prompt for x in s.read_styles_csv(tmp_path / "styles.csv")}
        assert saved == {"Photo": "photo of {prompt}, 35mm", "Watercolor": "watercolor, soft light"}
        page.click("#txt2img_style_apply")  # Photo is still selected: 📋 pastes it into the boxes
        page.wait_for_function(
            "() => document.querySelector('#txt2img_prompt textarea').value"
            " === 'photo of watercolor, soft light, 35mm'"
        )
        assert page.input_value("#txt2img_neg_prompt textarea") == "blurry"
