"""The upscaler registry finds model files in A1111's folders, names them as A1111 does, loads them
lazily and upscales by their own scale (three passes at most), tiled as the settings say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.services.images.resize import resize_image
from modules.sumi.services.upscalers.model_files import scale_from_name
from modules.sumi.services.upscalers.registry import SETTING_DEFAULTS, UpscalerRegistry
from tests.fixtures import tiny_upscalers as tiny

KINDS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny.write(root / "ESRGAN" / "4x-old-style.pth", tiny.esrgan_old())
    tiny.write(root / "ESRGAN" / "sub" / "rrdb.safetensors", tiny.esrgan_new(scale=2))
    tiny.write(root / "ESRGAN" / "notes.pth", {"some.weight": torch.zeros(2, 2)})
    tiny.write(root / "RealESRGAN" / "RealESRGAN_x4plus.pth", tiny.esrgan_new(), "params_ema")
    tiny.write(root / "RealESRGAN" / "realesr-general-x4v3.pth", tiny.compact(), "params")
    tiny.write(root / "SwinIR" / "swinir_x2.pth", tiny.swinir(), "params_ema")
    tiny.write(root / "DAT" / "DAT_x2.pth", tiny.dat(), "params")
    tiny.write(root / "HAT" / "Real_HAT_GAN_sharper.safetensors", tiny.hat())
    (root / "ESRGAN" / "readme.txt").write_text("not a model")
    return root


def _registry(models_dir: Path, **settings) -> UpscalerRegistry:
    values = {**SETTING_DEFAULTS, **settings}
    folders = [(kind, [models_dir / kind]) for kind in KINDS]
    return UpscalerRegistry(folders=folders, setting=values.get)


def _picture(width: int = 24, height: int = 16) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_files_are_listed_with_a1111_names_sorted_after_the_builtins(models_dir):
    names = _registry(models_dir).names()
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    # friendly file names, A1111's names for the known Real-ESRGAN/DAT files, sorted case-insensitively
    assert names[3:] == sorted(names[3:], key=str.lower)
    assert {"4x-old-style", "rrdb", "notes", "R-ESRGAN 4x+", "swinir_x2", "DAT x2"} <= set(names)
    assert "Real_HAT_GAN_sharper" in names
    assert "readme" not in names


def test_known_realesrgan_files_show_only_when_enabled_in_the_settings(models_dir):
    assert "R-ESRGAN General 4xV3" not in _registry(models_dir).names()  # A1111's default: 4x+ and Anime6B
    enabled = _registry(models_dir, realesrgan_enabled_models=["R-ESRGAN General 4xV3"]).names()
    assert "R-ESRGAN General 4xV3" in enabled and "R-ESRGAN 4x+" not in enabled


def test_listing_reads_no_weights_and_scales_come_from_the_names_until_loaded(models_dir):
    registry = _registry(models_dir)
    entries = {e.name: e for e in registry.entries()}
    assert len(registry.loaded) == 0
    assert entries["swinir_x2"].scale == 2 and entries["rrdb"].scale == 4  # "x2" in the name; else 4
    registry.upscale(_picture(), 2, "rrdb")
    assert {e.name: e for e in registry.entries()}["rrdb"].scale == 2  # the model's own, once loaded


def test_scale_from_name_follows_a1111s_rule():
    assert scale_from_name("4x-UltraSharp") == 4
    assert scale_from_name("RealESRGAN_x2plus") == 2
    assert scale_from_name("Real_HAT_GAN_sharper") == 4


@pytest.mark.parametrize(
    ("name", "scale"),
    [("4x-old-style", 4), ("R-ESRGAN 4x+", 4), ("swinir_x2", 2), ("DAT x2", 2), ("Real_HAT_GAN_sharper", 2)],
)
def test_each_model_upscales_by_its_scale(models_dir, name, scale):
    picture = _picture()
    out = _registry(models_dir).upscale(picture, scale, name)
    assert out.size == (picture.width * scale, picture.height * scale)
    plain = picture.resize(out.size, Image.Resampling.LANCZOS)
    assert np.asarray(out).astype(int).std() > 0 and out.tobytes() != plain.tobytes()


def test_a_2x_model_runs_three_times_for_8x(models_dir):
    registry = _registry(models_dir)
    calls = []
    original = registry._model_upscale

    def counting(entry, image):
        calls.append(image.size)
        return original(entry, image)

    registry._model_upscale = counting  # type: ignore[method-assign]
    out = registry.upscale(_picture(16, 8), 8, "swinir_x2")
    assert calls == [(16, 8), (32, 16), (64, 32)]
    assert out.size == (128, 64)


def test_a_4x_model_reaches_8x_in_two_passes(models_dir):
    out = _registry(models_dir).upscale(_picture(16, 8), 8, "4x-old-style")
    assert out.size == (128, 64)


def test_tiling_setting_changes_nothing_visible_for_small_overlaps(models_dir):
    picture = _picture(40, 40)
    whole = _registry(models_dir, ESRGAN_tile=0).upscale(picture, 4, "4x-old-style")
    tiled = _registry(models_dir, ESRGAN_tile=24, ESRGAN_tile_overlap=12).upscale(picture, 4, "4x-old-style")
    diff = np.abs(np.asarray(whole).astype(int) - np.asarray(tiled).astype(int))
    assert whole.size == tiled.size and diff.mean() < 4


def test_a_file_spandrel_does_not_know_is_a_clear_error_naming_it(models_dir):
    with pytest.raises(ModelLoadError, match="notes.pth"):
        _registry(models_dir).upscale(_picture(), 4, "notes")


def test_refresh_picks_up_a_new_file_and_unloads(models_dir, tmp_path):
    folder = tmp_path / "ESRGAN"
    registry = UpscalerRegistry(folders=[("ESRGAN", [folder])], setting=SETTING_DEFAULTS.get)
    assert registry.names() == ["None", "Lanczos", "Nearest"]
    tiny.write(folder / "2x-new.pth", tiny.compact(scale=2), "params")
    registry.refresh()
    assert registry.names()[-1] == "2x-new"
    registry.upscale(_picture(), 2, "2x-new")
    assert len(registry.loaded) == 1
    registry.refresh()
    assert len(registry.loaded) == 0


def test_resize_image_grows_with_the_upscaler_and_lanczos_when_shrinking(models_dir):
    registry = _registry(models_dir)
    picture = _picture(16, 16)
    grown = resize_image(0, picture, 64, 64, resizer=registry.resizer("4x-old-style"))
    direct = registry.upscale(picture, 4, "4x-old-style")
    assert grown.tobytes() == direct.tobytes()
    shrunk = resize_image(0, picture, 8, 8, resizer=registry.resizer("4x-old-style"))
    assert shrunk.tobytes() == picture.resize((8, 8), Image.Resampling.LANCZOS).tobytes()
    assert len(registry.loaded) == 1  # shrinking did not need a second model


def test_an_unknown_img2img_upscaler_falls_back_to_lanczos(models_dir):
    picture = _picture(16, 16)
    out = resize_image(0, picture, 32, 32, resizer=_registry(models_dir).resizer("gone"))
    assert out.tobytes() == picture.resize((32, 32), Image.Resampling.LANCZOS).tobytes()


def test_rescan_refreshes_only_when_the_files_changed(tmp_path):
    folder = tmp_path / "DAT"
    registry = UpscalerRegistry(folders=[("DAT", [folder])], setting=SETTING_DEFAULTS.get)
    tiny.write(folder / "2x-one.pth", tiny.compact(scale=2), "params")
    registry.rescan()
    registry.upscale(_picture(), 2, "2x-one")
    registry.rescan()
    assert len(registry.loaded) == 1  # nothing changed: the model stays loaded
    tiny.write(folder / "2x-two.pth", tiny.compact(scale=2), "params")
    registry.rescan()
    assert "2x-two" in registry.names() and len(registry.loaded) == 0


def test_the_upscaler_setting_offers_the_files_present_now(tmp_path):
    from modules.sumi.services.settings.options import builtin_options

    folder = tmp_path / "ESRGAN"
    registry = UpscalerRegistry(folders=[("ESRGAN", [folder])], setting=SETTING_DEFAULTS.get)
    labels = builtin_options()
    registry.attach_choices(labels)
    info = labels["upscaler_for_img2img"]
    assert info.resolved_component_args()["choices"] == ["None", "Lanczos", "Nearest"]
    tiny.write(folder / "4x-late.pth", tiny.compact(), "params")
    assert info.resolved_component_args()["choices"][-1] == "4x-late"


def test_half_precision_only_where_the_architecture_supports_it(models_dir):
    from modules.sumi.services.upscalers.loaded import load_descriptor

    cpu = torch.device("cpu")
    esrgan = load_descriptor(models_dir / "ESRGAN" / "4x-old-style.pth", device=cpu, prefer_half=True)
    swinir = load_descriptor(models_dir / "SwinIR" / "swinir_x2.pth", device=cpu, prefer_half=True)
    assert next(esrgan.model.parameters()).dtype == torch.float16
    assert next(swinir.model.parameters()).dtype == torch.float32  # spandrel: SwinIR does not support half


def test_the_registry_asks_for_half_only_on_cuda(models_dir):
    registry = UpscalerRegistry(
        folders=[("ESRGAN", [models_dir / "ESRGAN"])], setting=SETTING_DEFAULTS.get, prefer_half=True
    )
    descriptor = registry.load(registry.find("4x-old-style"))
    assert next(descriptor.model.parameters()).dtype == torch.float32  # on the CPU: fp32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_an_esrgan_runs_in_fp16(models_dir):
    registry = UpscalerRegistry(
        folders=[("ESRGAN", [models_dir / "ESRGAN"])],
        setting=SETTING_DEFAULTS.get,
        device=lambda: torch.device("cuda"),
        prefer_half=True,
    )
    out = registry.upscale(_picture(), 4, "4x-old-style")
    descriptor = registry.load(registry.find("4x-old-style"))
    assert next(descriptor.model.parameters()).dtype == torch.float16 and out.size == (96, 64)
