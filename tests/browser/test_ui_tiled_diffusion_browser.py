"""The Tiled Diffusion accordion in Chromium: tick it, pick small tiles, Generate, and the infotext carries
the extension's settings line; ↙️ on that infotext restores the method and the tile size. Regions set with
the sliders or dragged on the canvas picture reach the job and paste back; in img2img the picture shows
under them."""

from __future__ import annotations

import re

from tests.browser_support import generate, open_page, set_number, small_job, wait_text, wait_value


def test_tiled_diffusion_accordion_generates_and_pastes_back(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        small_job(page, "a red star", steps=2, size=128)
        page.click("#MD-t2i-enabled > button")
        page.check("#MD-t2i-enabled-checkbox input")
        assert not page.is_visible("#MD-overwrite-width-t2i")  # the size sliders follow "Overwrite"
        page.check("#MD-t2i-overwrite-image-size input")
        page.wait_for_selector("#MD-overwrite-width-t2i", state="visible")
        page.uncheck("#MD-t2i-overwrite-image-size input")
        page.wait_for_selector("#MD-overwrite-width-t2i", state="hidden")
        page.click("#MD-t2i-method input")
        page.get_by_role("option", name="Mixture of Diffusers").click()
        set_number(page, "MD-t2i-latent-tile-width", 48)
        set_number(page, "MD-t2i-latent-tile-height", 48)
        set_number(page, "MD-t2i-latent-tile-overlap", 16)
        info = generate(page, 'Tiled Diffusion: {"Method": "Mixture of Diffusers", "Tile tile width": 48')
        assert '"Tile Overlap": 16' in info
        set_number(page, "MD-t2i-latent-tile-width", 96)
        page.click("#MD-t2i-enabled > button")  # closing the accordion turns it off
        page.wait_for_function("() => !document.querySelector('#MD-t2i-enabled-checkbox input').checked")
        page.fill("#txt2img_prompt textarea", "")
        page.click("#paste")  # the last generation's params.txt
        wait_value(page, "#MD-t2i-latent-tile-width input[type=number]", "48")
        assert page.is_checked("#MD-t2i-enabled-checkbox input")


def test_a_region_drawn_in_the_accordion_shows_over_the_canvas_and_reaches_the_job(demo_server, chromium):
    with open_page(chromium, demo_server.url) as page:
        small_job(page, "a red circle in the center, blue background", steps=2, size=128)
        page.click("#MD-t2i-enabled > button")
        page.check("#MD-t2i-enabled-checkbox input")
        page.click("#MD-bbox-control-t2i > button")
        page.check("#MD-t2i-enable-bbox-control input")
        page.click("#MD-accordion-t2i-0 > button")
        page.check("#MD-bbox-t2i-0-enable input")
        set_number(page, "MD-t2i-0-w", 0.5)
        page.fill("#MD-t2i-0-prompt textarea", "green background")
        page.wait_for_function(  # region 1 drawn half as wide as the 480-wide picture
            "() => { const r = document.querySelector(\"#MD-t2i-region-preview svg rect[stroke='#e6194b']\");"
            " return r !== null && Math.abs(parseFloat(r.getAttribute('width')) - 240) < 1; }"
        )
        _drag_region_two(page)
        _click_drag_and_resize_regions(page)
        info = generate(page, '"Region control": {"Region 1": {"enable": true')
        dragged = re.search(
            r'"Region 2": \{"enable": true, "x": ([0-9.]+), "y": ([0-9.]+), "w": ([0-9.]+)', info
        )
        assert dragged and abs(float(dragged[1]) - 0.15) < 0.01 and abs(float(dragged[2]) - 0.4) < 0.01, info
        assert abs(float(dragged[3]) - 0.7) < 0.01, info
        assert '"prompt": "green background"' in info and '"w": 0.5' in info
        page.fill("#MD-t2i-0-prompt textarea", "")
        page.fill("#txt2img_prompt textarea", "")
        page.click("#paste")
        wait_value(page, "#MD-t2i-0-prompt textarea", "green background")
        page.fill("#MD-t2i-cfg-name textarea", "two-halves")  # the extension's Save / Load of a config
        page.click("#MD-t2i-cfg-save")
        wait_text(page, "#MD-t2i-cfg-tip", "Saved 2 region(s) to two-halves.json")
        page.fill("#MD-t2i-0-prompt textarea", "something else")
        page.click("#MD-t2i-cfg-load")
        wait_value(page, "#MD-t2i-0-prompt textarea", "green background")
        wait_text(page, "#MD-t2i-cfg-tip", "Loaded 2 region(s)")


def test_img2img_regions_are_drawn_over_the_picture_in_its_shape(demo_server, chromium, tmp_path):
    from PIL import Image

    png = tmp_path / "wide.png"
    Image.new("RGB", (320, 160), (200, 40, 40)).save(png)
    with open_page(chromium, demo_server.url) as page:
        page.get_by_role("tab", name="img2img").first.click()
        page.locator("#img2img_image input[type=file]").set_input_files(str(png))
        page.click("#MD-i2i-enabled > button")
        page.click("#MD-bbox-control-i2i > button")
        page.wait_for_selector("#MD-i2i-region-preview svg image")  # the picture beneath the regions
        view = page.get_attribute("#MD-i2i-region-preview svg", "viewBox")
        assert view == "0 0 480 240"  # the picture's 2:1


def _canvas_point(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#MD-t2i-region-preview svg > rect").first.bounding_box()
    assert box is not None
    return box["x"] + box["width"] * x, box["y"] + box["height"] * y


def _drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*_canvas_point(page, *start))
    page.mouse.down()
    page.mouse.move(*_canvas_point(page, (start[0] + end[0]) / 2, (start[1] + end[1]) / 2), steps=3)
    page.mouse.move(*_canvas_point(page, *end), steps=3)
    page.mouse.up()


def _wait_number(page, field: str, value: float) -> None:
    page.wait_for_function(
        f"() => Math.abs(parseFloat(document.querySelector('#MD-t2i-{field} input[type=number]').value) - {value})"
        " < 0.01"
    )


def _click_drag_and_resize_regions(page) -> None:
    """Region 1 spans (0.4..0.9, 0.4..0.6), region 2 (0.25..0.75, 0.5..0.9): a click on region 1 chooses it
    for drawing; region 2 dragged by its inside moves by the drag (0.1 left, 0.1 up), and by its
    bottom-right corner grows (0.2 wider, 0.15 taller)."""
    page.mouse.click(*_canvas_point(page, 0.8, 0.45))
    page.wait_for_function("() => document.querySelector('#MD-t2i-draw-region input[value=\"1\"]').checked")
    _drag(page, (0.5, 0.8), (0.4, 0.7))
    _wait_number(page, "1-x", 0.15)
    _wait_number(page, "1-y", 0.4)
    _wait_number(page, "1-w", 0.5)  # moving keeps the size
    page.wait_for_function(  # the picture follows: region 2 (green) starts at 0.15 of the 480-wide view
        "() => { const r = document.querySelector(\"#MD-t2i-region-preview svg rect[stroke='#3cb44b']\");"
        " return r !== null && Math.abs(parseFloat(r.getAttribute('x')) - 72) < 2; }"
    )
    _drag(page, (0.65, 0.8), (0.85, 0.95))
    _wait_number(page, "1-w", 0.7)
    _wait_number(page, "1-h", 0.55)
    _wait_number(page, "1-x", 0.15)  # the top-left corner stays


def _drag_region_two(page) -> None:
    """Choose region 2 and drag a box from (0.25, 0.5) to (0.75, 0.9) of the canvas picture: its sliders
    follow, it and region control are on, and the picture shows it in its colour."""
    page.locator("#MD-t2i-draw-region label", has_text="2").first.click()
    canvas = page.locator("#MD-t2i-region-preview svg > rect").first  # the canvas, letterboxed in the SVG
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.7, steps=4)
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.9, steps=4)
    page.mouse.up()
    page.wait_for_selector("#MD-t2i-1-x input[type=number]")  # the region's accordion opens
    page.wait_for_function(
        "() => Math.abs(parseFloat(document.querySelector('#MD-t2i-1-x input[type=number]').value) - 0.25) < 0.01"
    )
    assert page.is_checked("#MD-bbox-t2i-1-enable input") and page.is_checked(
        "#MD-t2i-enable-bbox-control input"
    )
    assert abs(float(page.input_value("#MD-t2i-1-w input[type=number]")) - 0.5) < 0.01
    assert abs(float(page.input_value("#MD-t2i-1-h input[type=number]")) - 0.4) < 0.01
    page.wait_for_selector("#MD-t2i-region-preview svg rect[stroke='#3cb44b']")  # region 2's colour
