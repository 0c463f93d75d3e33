"""The Extras and PNG Info tabs in Chromium against a real server: upscale an uploaded picture by 2 and
see the bigger image; a batch of uploads; read an image's parameters in PNG Info and send them to txt2img
(and the picture to Extras); send a txt2img result to Extras."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tests.app_support import running_server
from tests.browser_support import open_page, set_number, small_job, wait_text

PARAMETERS = "a lighthouse at dusk\nNegative prompt: fog\nSteps: 7, Sampler: Euler, CFG scale: 4.5, Seed: 99, Size: 320x256"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("sumi-extras")) as srv:
        yield srv


@pytest.fixture
def page(server, chromium):
    with open_page(chromium, server.url) as page:
        yield page


def picture(path, width: int = 64, height: int = 48, parameters: str | None = None):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    Image.fromarray(pixels).save(path, pnginfo=info)
    return path


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def test_upload_in_extras_and_upscale_by_two(page, server, tmp_path):
    page.get_by_role("tab", name="Extras").click()
    page.locator("#extras_image input[type=file]").set_input_files(str(picture(tmp_path / "in.png")))
    page.wait_for_selector("#extras_image img")
    choose(page, "extras_upscaler_1", "Lanczos")
    set_number(page, "extras_upscaling_resize", 2)
    page.click("#extras_generate")
    info = wait_text(page, "#html_info_extras", "Postprocess upscaler: Lanczos")
    assert "Postprocess upscale by: 2" in info
    page.wait_for_function(
        "() => [...document.querySelectorAll('#extras_gallery img')].some(i => i.naturalWidth === 128)"
    )
    saved = max(
        (server.data_dir / "outputs" / "extras-images").glob("0*.png"), key=lambda f: f.stat().st_mtime
    )
    with Image.open(saved) as image:
        assert image.size == (128, 96)
        assert "Postprocess upscaler: Lanczos" in image.info["postprocessing"]


def test_png_info_shows_the_parameters_and_sends_them_to_txt2img(page, tmp_path):
    page.get_by_role("tab", name="PNG Info").click()
    source = picture(tmp_path / "made.png", parameters=PARAMETERS)
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(source))
    wait_text(page, "#tab_pnginfo", "Steps: 7, Sampler: Euler")
    assert "a lighthouse at dusk" in page.inner_text("#tab_pnginfo")
    page.click("#txt2img_tab")
    page.wait_for_function(
        "() => document.querySelector('#txt2img_prompt textarea').value === 'a lighthouse at dusk'"
    )
    assert page.locator("#txt2img_neg_prompt textarea").input_value() == "fog"
    assert page.locator("#txt2img_steps input[type=number]").input_value() == "7"
    assert page.locator("#tab_txt2img").is_visible()
    # "Send to extras" carries the picture into Extras' Single Image
    page.get_by_role("tab", name="PNG Info").click()
    page.click("#extras_tab")
    page.wait_for_selector("#extras_image img")
    assert page.locator("#tab_extras").is_visible()


def test_send_a_txt2img_result_to_extras(page):
    small_job(page, "a red circle")
    page.click("#txt2img_generate")
    wait_text(page, "#html_info_txt2img", "Steps: 2")
    page.click("#txt2img_send_to_extras")
    page.wait_for_selector("#extras_image img")
    assert page.locator("#tab_extras").is_visible()
    assert page.locator("#extras_single_tab").is_visible()
    choose(page, "extras_upscaler_1", "Nearest")
    set_number(page, "extras_upscaling_resize", 2)
    page.click("#extras_generate")
    wait_text(page, "#html_info_extras", "Postprocess upscaler: Nearest")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#extras_gallery img')].some(i => i.naturalWidth === 128)"
    )


def test_batch_process_upscales_every_upload(page, server, tmp_path):
    page.get_by_role("tab", name="Extras").click()
    page.get_by_role("tab", name="Batch Process").click()
    files = [str(picture(tmp_path / f"pic{i}.png")) for i in range(2)]
    page.locator("#extras_image_batch input[type=file]").set_input_files(files)
    page.wait_for_function("() => document.querySelector('#extras_image_batch').innerText.includes('pic1')")
    choose(page, "extras_upscaler_1", "Lanczos")
    set_number(page, "extras_upscaling_resize", 1.5)
    page.click("#extras_generate")
    wait_text(page, "#html_info_extras", "Postprocess upscale by: 1.5")
    folder = server.data_dir / "outputs" / "extras-images"
    for name in ("pic0.png", "pic1.png"):  # opt use_original_name_batch
        with Image.open(folder / name) as image:
            assert image.size == (96, 72)


def test_scale_to_a_size_with_crop(page, tmp_path):
    page.get_by_role("tab", name="Extras").click()
    page.locator("#extras_image input[type=file]").set_input_files(
        str(picture(tmp_path / "wide.png", 64, 32))
    )
    page.wait_for_selector("#extras_image img")
    choose(page, "extras_upscaler_1", "Nearest")
    page.get_by_role("tab", name="Scale to").click()
    set_number(page, "extras_upscaling_resize_w", 96)
    set_number(page, "extras_upscaling_resize_h", 96)
    page.click("#extras_generate")
    info = wait_text(page, "#html_info_extras", "Postprocess crop to: 96x96")
    assert "Postprocess upscale to: 96x96" in info
    page.wait_for_function(
        "() => [...document.querySelectorAll('#extras_gallery img')].some(i => i.naturalWidth === 96)"
    )
