"""The img2img tab in Chromium against a real server with the tiny demo model: generate from an uploaded
image, send a txt2img result to Inpaint and redraw only the painted part, 💾 and 🗜️ under the gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser_support import open_page, set_number, small_job, wait_text

INFO = "#html_info_img2img"


@pytest.fixture(scope="module")
def server(demo_server):
    """The folder's shared demo server: these tests only generate, save outputs and read the page."""
    return demo_server


@pytest.fixture
def page(server, chromium):
    with open_page(chromium, server.url) as page:
        yield page


def img2img_job(page, prompt: str, *, denoise: float = 0.6) -> None:
    page.fill("#img2img_prompt textarea", prompt)
    for elem_id, value in {"img2img_width": 64, "img2img_height": 64, "img2img_steps": 2}.items():
        set_number(page, elem_id, value)
    set_number(page, "img2img_denoising_strength", denoise)


def newest(folder: Path, pattern: str = "*/*.png") -> Path:
    return max(folder.glob(pattern), key=lambda f: f.stat().st_mtime)


def test_generate_from_an_uploaded_image_then_save_and_zip(page, server, tmp_path):
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (30, 120, 200)).save(source)
    page.get_by_role("tab", name="img2img").first.click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(source))
    page.wait_for_selector("#img2img_image img")
    img2img_job(page, "a blue square")
    page.click("#img2img_generate")
    info = wait_text(page, INFO, "Denoising strength: 0.6")
    assert "a blue square" in info and "Size: 64x64" in info
    saved = newest(server.data_dir / "outputs" / "img2img-images")
    with Image.open(saved) as image:
        assert image.size == (64, 64) and "Denoising strength: 0.6" in image.info["parameters"]
    # 💾 saves the selected image to log/images with a log.csv row; 🗜️ offers a zip
    page.click("#save_img2img")
    wait_text(page, "#html_log_img2img", "Saved:")
    log = server.data_dir / "log" / "images" / "log.csv"
    assert "a blue square" in log.read_text(encoding="utf8")
    page.click("#save_zip_img2img")
    page.wait_for_function(
        "() => document.querySelector('#download_files_img2img')?.innerText.includes('.zip')"
    )


def test_a_txt2img_image_sent_to_inpaint_changes_only_where_the_mask_is_painted(page, server):
    small_job(page, "a striped wall")
    page.click("#txt2img_generate")
    wait_text(page, "#html_info_txt2img", "Steps: 2")
    original = newest(server.data_dir / "outputs" / "txt2img-images")
    page.click("#txt2img_send_to_inpaint")
    page.wait_for_selector("#img2maskimg canvas")
    page.wait_for_function(
        "() => document.querySelector('#img2img_prompt textarea').value === 'a striped wall'"
    )
    assert page.locator("#img2img_inpaint_tab").is_visible()
    # take the brush and paint a stroke across the middle of the picture
    page.click("#img2maskimg button[aria-label=Brush]")
    canvas = page.locator("#img2maskimg canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - box["width"] * 0.15, cy)
    page.mouse.down()
    page.mouse.move(cx + box["width"] * 0.15, cy, steps=8)
    page.mouse.up()
    img2img_job(page, "a striped wall", denoise=1.0)
    set_number(page, "img2img_mask_blur", 0)
    page.get_by_label("latent noise").check()
    page.click("#img2img_generate")
    wait_text(page, INFO, "Denoising strength: 1")
    result = newest(server.data_dir / "outputs" / "img2img-images")
    with Image.open(original) as a, Image.open(result) as b:
        before, after = np.asarray(a.convert("RGB")).astype(int), np.asarray(b.convert("RGB")).astype(int)
    diff = np.abs(before - after).max(axis=2)
    assert diff[:8].max() <= 2 and diff[-8:].max() <= 2  # top and bottom rows: not painted, unchanged
    assert diff[28:36, 24:40].mean() > 4  # the painted band was redrawn (the tiny model: small changes)


def test_inpaint_upload_redraws_only_inside_the_uploaded_mask(page, server, tmp_path):
    base, mask = tmp_path / "base.png", tmp_path / "mask.png"
    Image.new("RGB", (64, 64), (200, 60, 40)).save(base)
    band = Image.new("L", (64, 64), 0)
    band.paste(255, (0, 24, 64, 40))
    band.save(mask)
    page.get_by_role("tab", name="img2img").first.click()
    page.get_by_role("tab", name="Inpaint upload").click()
    page.locator("#img_inpaint_base input[type=file]").set_input_files(str(base))
    page.locator("#img_inpaint_mask input[type=file]").set_input_files(str(mask))
    page.wait_for_selector("#img_inpaint_mask img")
    img2img_job(page, "a green field", denoise=1.0)
    set_number(page, "img2img_mask_blur", 0)
    page.get_by_label("latent noise").check()
    page.click("#img2img_generate")
    wait_text(page, INFO, "Denoising strength: 1")
    with Image.open(newest(server.data_dir / "outputs" / "img2img-images")) as result:
        after = np.asarray(result.convert("RGB")).astype(int)
    diff = np.abs(after - np.array([200, 60, 40])).max(axis=2)
    assert diff[:16].max() <= 2 and diff[-16:].max() <= 2  # outside the band: the original
    assert diff[26:38].mean() > 10  # the band was redrawn


def test_batch_runs_a_folder_into_the_output_folder(page, server):
    inputs = server.data_dir / "batch-in"
    inputs.mkdir(exist_ok=True)
    for name, colour in (("a.png", (10, 200, 10)), ("b.png", (10, 10, 200))):
        Image.new("RGB", (64, 64), colour).save(inputs / name)
    out_dir = server.data_dir / "batch-out"
    page.get_by_role("tab", name="img2img").first.click()
    page.get_by_role("tab", name="Batch").click()
    page.fill("#img2img_batch_input_dir textarea, #img2img_batch_input_dir input", str(inputs))
    page.fill("#img2img_batch_output_dir textarea, #img2img_batch_output_dir input", str(out_dir))
    img2img_job(page, "two squares")
    page.click("#img2img_generate")
    wait_text(page, INFO, "Denoising strength: 0.6")
    assert sorted(f.name for f in out_dir.glob("*.png")) == ["a.png", "b.png"]


def upload_to_editor(page, editor: str, source: Path):
    """Upload `source` into the image editor `editor` and return the canvas it is drawn on.

    The editor draws with WebGL, which Chromium without a GPU renders in software. On a busy machine
    its canvas can be set up before its box has a size, and it stays at 0x0 until the window is
    resized (Gradio's editor sizes its canvas on resize): so when the canvas has no size after a while,
    the window is resized by a pixel, as a user dragging the window would. Of the editor's canvases,
    the one drawn on is the one with a size."""
    page.locator(f"#{editor} canvas").first.wait_for(state="attached", timeout=60_000)
    canvas = page.locator(f"#{editor} canvas").filter(visible=True).first
    page.locator(f"#{editor} input[type=file]").first.set_input_files(str(source))
    size = page.viewport_size or {"width": 1280, "height": 1000}
    for nudge in range(6):
        try:
            canvas.wait_for(timeout=30_000)
            return canvas
        except PlaywrightTimeoutError:
            page.set_viewport_size({"width": size["width"] + (nudge % 2) - 1, "height": size["height"]})
    canvas.wait_for(timeout=30_000)
    return canvas


@pytest.mark.parametrize(
    ("tab", "editor"), [("Sketch", "img2img_sketch"), ("Inpaint sketch", "inpaint_sketch")]
)
def test_a_sketch_drawn_over_an_uploaded_picture_generates(page, server, tmp_path, tab, editor):
    source = tmp_path / "source.png"
    Image.new("RGB", (64, 64), (240, 240, 240)).save(source)
    before = set((server.data_dir / "outputs" / "img2img-images").glob("*/*.png"))
    page.get_by_role("tab", name="img2img").first.click()
    page.get_by_role("tab", name=tab, exact=True).click()
    canvas = upload_to_editor(page, editor, source)
    page.click(f"#{editor} button[aria-label=Brush]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - box["width"] * 0.2, cy)
    page.mouse.down()
    page.mouse.move(cx + box["width"] * 0.2, cy, steps=8)
    page.mouse.up()
    img2img_job(page, f"a {tab.lower()}")
    page.click("#img2img_generate")
    info = wait_text(page, INFO, "Denoising strength: 0.6")
    assert f"a {tab.lower()}" in info and "Size: 64x64" in info
    assert ("Mask blur" in info) == (tab == "Inpaint sketch")  # the strokes are the mask there only
    assert set((server.data_dir / "outputs" / "img2img-images").glob("*/*.png")) - before
