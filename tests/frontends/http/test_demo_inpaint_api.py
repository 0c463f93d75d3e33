"""Inpainting asked through the A1111 API on the shipped demo model, read from the pictures: a masked
square given the prompt "green" turns green, and the rest of the picture stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.app_support import decode_pixels, encode_png
from tools.demo_model.reading import nearest_colour
from tools.demo_model.scenes import Scene, render

BOX = (72, 40, 120, 88)  # the masked square: right of the red circle, on the white background
BLUR = 4


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui", loaded=True)  # the demo


def _mask() -> Image.Image:
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, BOX)
    return mask


def _green_share(pixels: np.ndarray) -> float:
    colours = [nearest_colour(rgb) for rgb in pixels.reshape(-1, 3)]
    return colours.count("green") / len(colours)


@pytest.fixture(scope="module")
def inpainted(client):
    picture = render(Scene("red", "circle", "left", "large", "white"))
    body = {
        "prompt": "a large green square",
        "init_images": [encode_png(picture)],
        "mask": encode_png(_mask()),
        "mask_blur": BLUR,
        "inpainting_fill": 1,  # original
        "inpaint_full_res": True,  # "only masked": the square is drawn at the model's size
        "inpaint_full_res_padding": 8,
        "denoising_strength": 1.0,
        "width": 128,
        "height": 128,
        "steps": 20,
        "cfg_scale": 7,
        "sampler_name": "Euler a",
        "seed": 3,
        "batch_size": 3,
    }
    response = client.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    return np.asarray(picture), [decode_pixels(image) for image in response.json()["images"][:3]]


def test_inpainting_a_square_with_green_turns_that_square_green(inpainted):
    before, afters = inpainted
    x0, y0, x1, y1 = BOX
    assert _green_share(before[y0:y1, x0:x1]) == 0
    shares = [_green_share(after[y0:y1, x0:x1]) for after in afters]
    assert min(shares) >= 0.2 and sum(shares) / len(shares) >= 0.3, shares


def test_inpainting_leaves_the_picture_outside_the_mask_as_it_was(inpainted):
    before, afters = inpainted
    outside = np.ones(before.shape[:2], bool)
    x0, y0, x1, y1 = BOX
    outside[y0 - 2 * BLUR : y1 + 2 * BLUR, x0 - 2 * BLUR : x1 + 2 * BLUR] = False
    for after in afters:
        change = np.abs(after.astype(int) - before.astype(int))[outside]
        assert change.mean() < 1.0 and _green_share(after[outside]) < 0.001, change.mean()
