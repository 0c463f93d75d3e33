"""The Tiling checkbox in Chromium: ticked, Generate makes a tiled image (infotext `Tiling: True`), and
↙️ paste of an infotext without it unticks it. The job itself is tested in tests/frontends/http/test_tiling_api.py."""

from __future__ import annotations

from tests.browser_support import generate, open_page, small_job, wait_until


def test_tiling_checkbox_in_the_browser(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        box = "#txt2img_tiling input"
        assert not page.is_checked(box)
        small_job(page, "a tileable brick wall")
        page.check(box)
        info = generate(page, "Tiling: True")
        assert "Steps: 2" in info
        page.fill(
            "#txt2img_prompt textarea", "a wall\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"
        )
        page.click("#paste")
        wait_until(lambda: not page.is_checked(box))
