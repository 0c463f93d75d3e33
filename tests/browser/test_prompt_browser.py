"""Prompt syntax through the web UI in Chromium: a prompt with emphasis, AND, alternation and BREAK
generates, and the infotext keeps it. The syntax's effect on images is tested through the API in
tests/app/test_prompt_e2e.py."""

from __future__ import annotations

from tests.browser_support import INFO, open_page, small_job, wait_text

BROWSER_PROMPT = "a (red:1.3) fox AND a [cat|dog] BREAK hat"


def test_the_web_ui_generates_from_a_prompt_with_every_syntax(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        small_job(page, BROWSER_PROMPT)
        page.click("#txt2img_generate")
        page.wait_for_selector("#txt2img_gallery img")
        info = wait_text(page, INFO, "Steps: 2")
        assert info.splitlines()[0] == BROWSER_PROMPT
        assert "Steps: 2" in info and "Size: 64x64" in info
        assert page.inner_text("#txt2img_error").strip() == ""
