"""Hires. fix in Chromium: the accordion's checkbox doubles the generated image and says so, and ✨ Upscale
runs the hires pass on a finished gallery image, which it replaces with one twice its size."""

from __future__ import annotations

from tests.browser_support import INFO, generate, open_page, small_job, wait_text

IMAGE = "#txt2img_gallery img"


def _gallery_width(page) -> int:
    page.wait_for_function(f"() => document.querySelector('{IMAGE}')?.naturalWidth > 0")
    return int(page.evaluate(f"() => document.querySelector('{IMAGE}').naturalWidth"))


def _open_hires(page) -> None:
    page.click("#txt2img_hr button")  # the accordion's header
    page.wait_for_selector("#txt2img_hr-checkbox input", state="visible")


def test_hires_fix_doubles_the_image_and_upscale_doubles_a_gallery_image(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        small_job(page, "a red fox")
        _open_hires(page)
        page.check("#txt2img_hr-checkbox input")
        wait_text(page, "#txtimg_hr_finalres", "from 64x64 to 128x128")
        info = generate(page, "Hires upscale: 2")
        assert (
            "Size: 64x64" in info and "Denoising strength: 0.7" in info and "Hires upscaler: Latent" in info
        )
        assert _gallery_width(page) == 128
        assert page.inner_text("#txt2img_error").strip() == ""

        page.uncheck("#txt2img_hr-checkbox input")
        info = generate(page, "Steps: 2")
        page.wait_for_function(
            "() => !document.querySelector('#html_info_txt2img').innerText.includes('Hires')"
        )
        assert _gallery_width(page) == 64
        seed = next(part for part in page.inner_text(INFO).split(", ") if part.startswith("Seed: "))

        page.click("#txt2img_upscale")  # ✨: the hires pass only, on the shown image, with its seed
        upscaled = wait_text(page, INFO, "Hires upscale: 2")
        assert seed in upscaled and "Size: 64x64" in upscaled
        page.wait_for_function(f"() => document.querySelector('{IMAGE}')?.naturalWidth === 128")
        assert page.inner_text("#txt2img_error").strip() == ""
