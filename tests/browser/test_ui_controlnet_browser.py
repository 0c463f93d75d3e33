"""The ControlNet accordion in Chromium against a real Sumi server with the tiny demo model and a tiny
ControlNet made from its UNet: upload, preview canny edges, generate with the map, bad units."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import running_server
from tests.browser_support import INFO, open_page, set_number, small_job
from tests.fixtures.tiny_controlnets import write_lllyasviel
from tests.fixtures.tiny_models import jitter

UNIT0 = "txt2img_controlnet_ControlNet-0"
UNIT1 = "txt2img_controlnet_ControlNet-1"
UNIT2 = "txt2img_controlnet_ControlNet-2"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("sumi-cn")) as srv:
        demo = load_checkpoint(srv.app.checkpoints.list()[0].filename)
        controlnet = jitter(ControlNetModel.from_unet(demo.unet), 5)
        write_lllyasviel(srv.app.paths.controlnet_dir / "control_tiny_canny.safetensors", controlnet)
        srv.app.controlnet.models.refresh()
        yield srv


@pytest.fixture(scope="module")
def page(server, chromium):
    with open_page(chromium, server.url, height=1400) as page:
        yield page


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    image = np.full((64, 64, 3), 255, np.uint8)
    cv2.rectangle(image, (8, 8), (40, 40), (0, 0, 0), -1)
    path = tmp_path_factory.mktemp("img") / "shapes.png"
    Image.fromarray(image).save(path)
    return path


def choose(page, elem_id: str, option: str) -> None:
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=False).first.click()


def generate_and_wait(page, text: str) -> str:
    page.click("#txt2img_generate")
    page.wait_for_function(
        "t => document.querySelector('#txt2img_error').innerText.includes(t)"
        " || document.querySelector('#html_info_txt2img').innerText.includes(t)",
        arg=text,
    )
    return page.inner_text("#txt2img_error") + page.inner_text(INFO)


def open_accordion(page) -> None:
    if not page.locator("#txt2img_controlnet_tabs").is_visible():
        page.click("#txt2img_controlnet > button")
    page.wait_for_selector("#txt2img_controlnet_tabs")


def test_upload_preview_and_generate_with_canny_then_a_unit_without_image(page, png):
    open_accordion(page)
    page.locator(f"#{UNIT0}_input_image input[type=file]").set_input_files(str(png))
    page.wait_for_selector(f"#{UNIT0}_input_image img")
    page.check(f"#{UNIT0}_controlnet_enable_checkbox input")
    choose(page, f"{UNIT0}_controlnet_preprocessor_dropdown", "canny")
    page.wait_for_selector(f"#{UNIT0}_controlnet_threshold_A_slider")  # canny's sliders appear
    assert "Low Threshold" in page.inner_text(f"#{UNIT0}_controlnet_threshold_A_slider")
    assert "High Threshold" in page.inner_text(f"#{UNIT0}_controlnet_threshold_B_slider")
    page.click(f"#{UNIT0}_controlnet_refresh_models")
    choose(page, f"{UNIT0}_controlnet_model_dropdown", "control_tiny_canny")
    page.click(f"#{UNIT0}_controlnet_trigger_preprocessor")
    page.wait_for_selector(f"#{UNIT0}_generated_image img")
    assert page.is_checked(f"#{UNIT0}_controlnet_preprocessor_preview_checkbox input")

    small_job(page, "a fox")
    info = generate_and_wait(page, "Steps: 2")
    assert 'ControlNet 0: "Module: canny' in info
    page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery .thumbnail-item').length === 2")

    page.click(f"#{UNIT1}-button")  # Gradio's id for the unit's tab button
    page.check(f"#{UNIT1}_controlnet_enable_checkbox input")
    assert "has no image" in generate_and_wait(page, "has no image")
    page.uncheck(f"#{UNIT1}_controlnet_enable_checkbox input")
    page.fill("#txt2img_prompt textarea", "a fox again")
    assert "a fox again" in generate_and_wait(page, "a fox again")
    assert page.inner_text("#txt2img_error").strip() == ""


def test_a_blank_canvas_to_draw_on_and_preview(page):
    open_accordion(page)
    page.click(f"#{UNIT2}-button")
    page.click(f"#{UNIT2}_controlnet_open_new_canvas_button")
    set_number(page, f"{UNIT2}_controlnet_canvas_width", 384)
    set_number(page, f"{UNIT2}_controlnet_canvas_height", 256)
    page.click(f"#{UNIT2}_controlnet_canvas_create_button")
    canvas = page.locator(f"#{UNIT2}_canvas canvas").first
    canvas.wait_for()
    assert not page.locator(f"#{UNIT2}_controlnet_new_canvas_group").is_visible()
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 30, y)
    page.mouse.down()
    page.mouse.move(x + 30, y, steps=6)
    page.mouse.up()
    choose(page, f"{UNIT2}_controlnet_preprocessor_dropdown", "invert (from white bg & black line)")
    page.click(f"#{UNIT2}_controlnet_trigger_preprocessor")
    preview = page.locator(f"#{UNIT2}_generated_image img")
    preview.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    size = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert size == [384, 256]  # the new canvas's size
    white = preview.evaluate(
        """img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 128;
            return n / (c.width * c.height);
        }"""
    )
    assert 0 < white < 0.2  # inverted: the drawn stroke is white on black


def test_a_region_mask_and_per_level_weights_reach_the_unit(page, tmp_path):
    """Unit 0 (canny, enabled by the first test): a wrong number of weights is an error naming the
    count; that many weights, with a region mask, make an image, and the weights show as a plot."""
    open_accordion(page)
    page.click(f"#{UNIT0}-button")
    assert not page.locator(f"#{UNIT0}_mask_image").is_visible()
    page.check(f"#{UNIT0}_controlnet_mask_upload_checkbox input")
    page.wait_for_selector(f"#{UNIT0}_mask_image", state="visible")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.array([0, 255], np.uint8).repeat(32), (64, 1))).save(mask)
    page.locator(f"#{UNIT0}_mask_image input[type=file]").set_input_files(str(mask))
    page.wait_for_selector(f"#{UNIT0}_mask_image img")
    page.click(f"#{UNIT0}_controlnet_advanced_weighting > button")
    weights = page.locator(f"#{UNIT0}_controlnet_advanced_weights textarea")
    weights.fill("[1, 0.5]")
    message = generate_and_wait(page, "weights, got 2")
    levels = int(message.split("give ")[1].split(" weights")[0])
    weights.fill(", ".join(["0.5"] * levels))
    page.wait_for_selector(f"#{UNIT0}_controlnet_weight_plot", state="visible")
    page.fill("#txt2img_prompt textarea", "a masked fox")
    info = generate_and_wait(page, "a masked fox")
    assert 'ControlNet 0: "Module: canny' in info and page.inner_text("#txt2img_error").strip() == ""
    page.uncheck(f"#{UNIT0}_controlnet_mask_upload_checkbox input")
    page.wait_for_selector(f"#{UNIT0}_mask_image", state="hidden")
