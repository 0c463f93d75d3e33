"""The web UI in Chromium against a real Sumi server with the tiny demo model."""

from __future__ import annotations

import re
import shutil

import pytest
from PIL import Image

from tests.app_support import running_server
from tests.browser_support import INFO, open_page, set_number, small_job, wait_text, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("sumi-data")) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server, chromium):
    """One page for the module (a page load is 6-15 s): the tests run in file order, the first reads the
    fresh page, and each waits for text its own job makes (its prompt, size or step count)."""
    with open_page(chromium, server.url) as page:
        yield page


@pytest.fixture
def fresh_page(server, chromium):
    """A page of its own, for a test that needs sizes nobody has typed yet."""
    with open_page(chromium, server.url) as page:
        yield page


def test_generate_shows_images_and_infotext_and_saves_pngs(page, server):
    assert "demo model" in page.inner_text("#sumi_notices")
    assert page.input_value("#setting_sd_model_checkpoint input").startswith("sumi-demo-shapes")
    versions = page.inner_text("#footer .versions")  # A1111's footer, below the tabs
    assert "version: sumi-" in versions and "torch: " in versions and "checkpoint: " in versions
    assert page.is_visible("#footer a:text('Reload UI')")
    for size in ("txt2img_width", "txt2img_height", "img2img_width", "img2img_height"):  # the demo's own size
        assert page.input_value(f"#{size} input[type=number]") == "128"
    small_job(page, "a lighthouse at dusk")
    set_number(page, "txt2img_batch_size", 2)
    page.click("#txt2img_generate")
    info = wait_text(page, INFO, "Steps: 2")
    assert "a lighthouse at dusk" in info and "Size: 64x64" in info and "Sampler: DPM++ 2M" in info
    page.wait_for_selector("#txt2img_gallery img")
    seed = int(re.search(r"Seed: (\d+)", info).group(1))
    outputs = server.data_dir / "outputs" / "txt2img-images"
    files = sorted(outputs.glob("*/*-a lighthouse at dusk.png"))
    assert [f.name.split("-")[1] for f in files] == [str(seed), str(seed + 1)]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", files[0].parent.name)
    with Image.open(files[1]) as image:
        assert image.size == (64, 64) and f"Seed: {seed + 1}" in image.info["parameters"]
    # the gallery holds the grid, then the two images; selecting one shows its infotext and seed
    page.get_by_label("Thumbnail 3 of 3").first.click()
    wait_text(page, INFO, f"Seed: {seed + 1}")
    page.click("#txt2img_reuse_seed")
    page.wait_for_function(
        "s => document.querySelector('#txt2img_seed input').value === s", arg=str(seed + 1)
    )
    page.click("#txt2img_random_seed")
    page.wait_for_function("() => document.querySelector('#txt2img_seed input').value === '-1'")


def test_a_width_off_the_8_grid_makes_a_rounded_down_image_and_says_so(page):
    small_job(page, "a red fox")
    set_number(page, "txt2img_width", 100)
    page.locator("#txt2img_prompt textarea").press("Control+Enter")  # A1111's shortcut for Generate
    info = wait_text(page, INFO, "Size: 96x64")  # as A1111's latents make it
    assert "a red fox" in info
    warning = page.locator("#html_info_txt2img .sumi-warning").first
    assert "width 100 is not a multiple of 8: the image is 96 px wide" in warning.inner_text()
    assert page.inner_text("#txt2img_error").strip() == ""


def test_progress_preview_and_interrupt_while_generating(page, server):
    small_job(page, "a slow painting", steps=150)
    set_number(page, "txt2img_batch_count", 20)  # far more work than the test waits for
    page.click("#txt2img_generate")
    page.wait_for_function(
        "() => /Step \\d+\\/150/.test(document.querySelector('#txt2img_progress').innerText)"
    )
    progress = page.inner_text("#txt2img_progress")
    assert re.search(r"\d+%", progress) and "Batch 1/20" in progress
    page.wait_for_selector("#txt2img_preview img")
    page.click("#txt2img_interrupt")  # must not wait behind the running Generate
    wait_text(page, INFO, "Steps: 150")
    assert server.app.state.snapshot().job_no < 20  # stopped, not run to the end
    assert page.inner_text("#txt2img_progress").strip() == ""
    assert not page.locator("#txt2img_preview").is_visible()
    assert page.locator("#txt2img_gallery img").count() >= 1


def test_checkpoint_refresh_select_and_load_failure(page, server):
    models = server.data_dir / "models" / "Stable-diffusion"
    demo = next(models.glob("sumi-demo*.safetensors"))
    shutil.copy(demo, models / "other.safetensors")
    shutil.copy(demo, models / "broken.safetensors")
    page.click("#refresh_sd_model_checkpoint")
    choose_checkpoint(page, "other.safetensors")
    wait_until(lambda: "other.safetensors" in str(server.app.options.sd_model_checkpoint))
    (models / "broken.safetensors").unlink()  # listed, but gone when the user picks it
    choose_checkpoint(page, "broken.safetensors")
    page.wait_for_selector("#sumi_notices .sumi-error")
    assert "broken.safetensors" in page.inner_text("#sumi_notices")
    assert "other.safetensors" in str(server.app.options.sd_model_checkpoint)
    page.wait_for_function(
        "() => document.querySelector('#setting_sd_model_checkpoint input').value.startsWith('other')"
    )


def test_size_sliders_follow_the_picked_checkpoints_trained_size(fresh_page, server, tiny_sd1_ckpt):
    page = fresh_page
    models = server.data_dir / "models" / "Stable-diffusion"
    shutil.copy(tiny_sd1_ckpt[0], models / "plain-sd1.safetensors")  # says no size: A1111's 512x512
    page.click("#refresh_sd_model_checkpoint")
    txt_width, img_width = "#txt2img_width input[type=number]", "#img2img_width input[type=number]"
    choose_checkpoint(page, "plain-sd1.safetensors")
    page.wait_for_function(f"() => document.querySelector('{img_width}').value === '512'")
    assert page.input_value(txt_width) == "512"
    # the height slider has drawn the pick's 512 in both its boxes before the user types over it (typing
    # while the slider still redraws the update was lost: a CI flake)
    page.wait_for_function(
        "() => ['number', 'range'].every(t => "
        "document.querySelector(`#txt2img_height input[type=${t}]`).value === '512')"
    )
    set_number(page, "txt2img_height", 256)  # a size the user chose stays when the model changes
    # the slider has taken the typed value (its range handle moved) before the next pick reads it
    page.wait_for_function(
        "() => document.querySelector('#txt2img_height input[type=range]').value === '256'"
    )
    choose_checkpoint(page, "sumi-demo-shapes.safetensors")
    page.wait_for_function(f"() => document.querySelector('{img_width}').value === '128'")
    assert page.input_value(txt_width) == "512"
    assert page.input_value("#txt2img_height input[type=number]") == "256"


def choose_checkpoint(page, name: str) -> None:
    page.click("#setting_sd_model_checkpoint input")
    page.get_by_role("option", name=re.compile(re.escape(name))).click()
