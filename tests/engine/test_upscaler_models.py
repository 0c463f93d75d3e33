"""Upscaler weight files in the layouts people download are recognised by spandrel and run at their
scale; tiling blends without seams; the torchvision stand-ins match torchvision's math."""

from __future__ import annotations

import importlib.util
import pickle
import sys

import pytest
import torch

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.upscalers import spandrel_loader
from modules.sumi.engine.upscalers.spandrel_loader import load_model, normalize, rotate
from modules.sumi.engine.upscalers.tiled import tile_starts, upscale_tensor
from tests.fixtures import tiny_upscalers as tiny

LAYOUTS = [
    ("4x-old-esrgan.pth", tiny.esrgan_old, None, "ESRGAN", 4),
    ("RealESRGAN_x4plus.pth", tiny.esrgan_new, "params_ema", "ESRGAN", 4),
    ("rrdb_new.safetensors", tiny.esrgan_new, None, "ESRGAN", 4),
    ("realesr-general-x4v3.pth", tiny.compact, "params", "Compact", 4),
    ("swinir_x2.pth", tiny.swinir, "params_ema", "SwinIR", 2),
    ("swinir_x2.safetensors", tiny.swinir, None, "SwinIR", 2),
    ("DAT_x2.pth", tiny.dat, "params", "DAT", 2),
    ("HAT_x2.pth", tiny.hat, "params_ema", "HAT", 2),
    ("HAT_x2.safetensors", tiny.hat, None, "HAT", 2),
]


@pytest.mark.parametrize(("name", "build", "wrapper", "arch", "scale"), LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_each_layout_is_detected_with_its_scale_and_upscales_by_it(
    tmp_path, name, build, wrapper, arch, scale
):
    path = tiny.write(tmp_path / name, build(), wrapper)
    model = load_model(path)
    assert model.architecture.id == arch
    assert model.scale == scale
    out = model(torch.rand(1, 3, 12, 20))
    assert out.shape == (1, 3, 12 * scale, 20 * scale)


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"model.0.weight": Evil()}))
    with pytest.raises(ModelLoadError):
        load_model(path)
    assert not marker.exists()


def test_a_file_that_is_not_an_upscaler_names_the_file(tmp_path):
    path = tiny.write(tmp_path / "notes.pth", {"some.weight": torch.zeros(3, 3)})
    with pytest.raises(ModelLoadError, match="notes.pth"):
        load_model(path)


def test_tile_starts_cover_the_side_with_the_overlap():
    assert tile_starts(100, 192, 8) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:], strict=False))


def test_tiles_blend_to_the_whole_picture_for_a_pointwise_model():
    """A model without spatial context (a 1x1 conv then pixel shuffle) gives exactly the untiled result,
    so the blending weights add up to one everywhere: no seams."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1), torch.nn.PixelShuffle(2))
    image = torch.rand(1, 3, 37, 53)
    whole = upscale_tensor(model, image, tile=0, overlap=0)
    tiled = upscale_tensor(model, image, tile=16, overlap=4)
    assert tiled.shape == whole.shape == (1, 3, 74, 106)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_tiled_esrgan_is_close_to_untiled_away_from_the_tile_borders(tmp_path):
    model = load_model(tiny.write(tmp_path / "c.pth", tiny.compact(scale=2), "params"))
    image = torch.rand(1, 3, 40, 40)
    whole = upscale_tensor(model, image, tile=0, overlap=0)
    tiled = upscale_tensor(model, image, tile=24, overlap=12)
    # Compact has 4 3x3 convs: 4 pixels of context; with 12 pixels of overlap the blend ramps cover them
    assert (tiled - whole).abs().mean() < 0.01


def test_an_interrupt_between_tiles_still_returns_a_full_picture():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 1), torch.nn.PixelShuffle(2))
    calls = []

    def interrupted() -> bool:
        calls.append(1)
        return len(calls) > 2

    out = upscale_tensor(model, torch.rand(1, 3, 40, 40), tile=16, overlap=4, interrupted=interrupted)
    assert out.shape == (1, 3, 80, 80)
    assert torch.isfinite(out).all()


def test_rotate_by_quarter_turns_equals_rot90():
    image = torch.rand(2, 3, 9, 9)
    for quarter in (1, 2, 3):
        turned = rotate(image, 90.0 * quarter)
        torch.testing.assert_close(turned, torch.rot90(image, quarter, dims=(2, 3)))


def test_rotate_by_zero_is_the_identity():
    image = torch.rand(1, 2, 6, 10)
    torch.testing.assert_close(rotate(image, 0.0), image)


def test_normalize_subtracts_the_mean_and_divides_by_std_per_channel():
    image = torch.rand(3, 4, 5)
    mean, std = [0.5, 0.25, 0.1], [0.2, 0.5, 1.0]
    expected = torch.stack([(image[c] - mean[c]) / std[c] for c in range(3)])
    torch.testing.assert_close(normalize(image, mean, std), expected)
    copy = image.clone()
    normalize(copy, mean, std, inplace=True)
    torch.testing.assert_close(copy, expected)


def test_torchvision_is_not_left_in_sys_modules_after_import():
    """Without a real torchvision the stand-ins serve spandrel's import only, then leave."""
    spandrel_loader.import_spandrel()
    assert "spandrel" in sys.modules
    if importlib.util.find_spec("torchvision") is None:
        assert not [name for name in sys.modules if name.split(".")[0] == "torchvision"]
