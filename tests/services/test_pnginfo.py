"""PNG Info's reader: A1111's infotext from PNG text chunks and from JPEG EXIF, the other items, and a
clear note for an image without any."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

from modules.sumi.services.images.pnginfo import run_pnginfo
from modules.sumi.services.images.saving import encode_image
from modules.sumi.services.jobs.infotext import parse_infotext

INFOTEXT = (
    "a <b>cat</b>\nNegative prompt: dog\nSteps: 7, Sampler: Euler, CFG scale: 4.5, Seed: 99, Size: 64x48"
)


def reopened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_a1111_png_parameters_and_other_chunks_are_shown_escaped():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT)
    info.add_text("postprocessing", "Postprocess upscaler: Lanczos")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG", pnginfo=info)
    _, parameters, html = run_pnginfo(reopened(buf.getvalue()))
    assert parameters == INFOTEXT
    assert parse_infotext(parameters)["Steps"] == "7"
    assert "a &lt;b&gt;cat&lt;/b&gt;<br>Negative prompt: dog" in html
    assert "<b>postprocessing</b>" in html and "Postprocess upscaler: Lanczos" in html


def test_jpeg_exif_user_comment_is_read():
    data = encode_image(Image.new("RGB", (8, 8)), "jpg", INFOTEXT)
    assert run_pnginfo(reopened(data))[1] == INFOTEXT


def test_an_image_without_info_says_so():
    _, parameters, html = run_pnginfo(Image.new("RGB", (8, 8)))
    assert parameters == "" and "Nothing found" in html
    assert run_pnginfo(None) == ("", "", "")
