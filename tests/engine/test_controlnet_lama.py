"""LaMa weights in sd-webui-controlnet's layout (ControlNetLama.pth) are recognised by spandrel, and the
`inpaint_only+lama` fill paints only inside the mask, at any picture size."""

from __future__ import annotations

import numpy as np
import pytest

from modules.sumi.engine.controlnet.lama import fill_with_lama
from modules.sumi.engine.upscalers.spandrel_loader import load_model
from tests.fixtures import tiny_upscalers as tiny


@pytest.fixture(scope="module")
def lama(tmp_path_factory):
    path = tiny.write(tmp_path_factory.mktemp("lama") / "ControlNetLama.pth", tiny.lama(), "state_dict")
    return load_model(path)


def test_the_extensions_lama_file_is_recognised(lama):
    assert lama.architecture.id == "LaMa"
    assert lama.purpose == "Inpainting"


@pytest.mark.parametrize("size", [(64, 64), (50, 70)])
def test_the_fill_changes_only_the_masked_part(lama, size):
    height, width = size
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 12:40] = 255
    filled = fill_with_lama(lama, image, mask)
    assert filled.shape == image.shape and filled.dtype == np.uint8
    assert np.array_equal(filled[mask == 0], image[mask == 0])
    assert not np.array_equal(filled[mask == 255], image[mask == 255])
