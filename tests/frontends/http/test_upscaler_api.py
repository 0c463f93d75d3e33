"""GET /sdapi/v1/upscalers, /latent-upscale-modes and /realesrgan-models list what the upscaler
folders hold, with A1111's fields; the A1111 facades (`shared.sd_upscalers`, `modelloader`,
`images.resize_image`) go through the same registry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules import images, modelloader, shared
from tests.fixtures import tiny_upscalers as tiny


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    tiny.write(data / "models" / "ESRGAN" / "4x-old-style.pth", tiny.esrgan_old())
    tiny.write(data / "models" / "RealESRGAN" / "RealESRGAN_x4plus.pth", tiny.esrgan_new(), "params_ema")
    tiny.write(data / "models" / "SwinIR" / "swinir_x2.safetensors", tiny.swinir())
    return make_module_app(data, "--api", "--nowebui")


def _picture(size: int = 16) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_upscalers_lists_builtins_then_model_files(client, app):
    items = client.get("/sdapi/v1/upscalers").json()
    assert [i["name"] for i in items[:3]] == ["None", "Lanczos", "Nearest"]
    by_name = {i["name"]: i for i in items}
    assert set(items[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
    assert by_name["4x-old-style"]["model_path"].endswith("4x-old-style.pth")
    assert by_name["swinir_x2"]["scale"] == 2
    assert by_name["R-ESRGAN 4x+"]["model_name"] == "RealESRGAN"


def test_latent_upscale_modes_are_a1111s(client):
    names = [i["name"] for i in client.get("/sdapi/v1/latent-upscale-modes").json()]
    assert names[0] == "Latent" and "Latent (nearest-exact)" in names and len(names) == 6


def test_realesrgan_models_lists_the_present_files(client):
    items = client.get("/sdapi/v1/realesrgan-models").json()
    assert items == [
        {"name": "R-ESRGAN 4x+", "path": items[0]["path"], "scale": 4},
    ]
    assert items[0]["path"].endswith("RealESRGAN_x4plus.pth")


def test_a_new_file_shows_in_the_list_and_after_load_upscalers(client, app):
    app.upscalers.names()  # scanned before the file comes
    tiny.write(app.paths.models_dir / "HAT" / "HAT_x2.pth", tiny.hat(), "params_ema")
    assert "HAT_x2" not in [d.name for d in shared.sd_upscalers]  # A1111: the list is built at load
    assert "HAT_x2" in [i["name"] for i in client.get("/sdapi/v1/upscalers").json()]
    tiny.write(app.paths.models_dir / "HAT" / "HAT_x3.pth", tiny.hat(scale=3), "params_ema")
    modelloader.load_upscalers()
    assert "HAT_x3" in [d.name for d in shared.sd_upscalers]


def test_shared_sd_upscalers_run_through_the_registry(app):
    data = {d.name: d for d in shared.sd_upscalers}
    assert list(data)[:3] == ["None", "Lanczos", "Nearest"]
    model = data["4x-old-style"]
    picture = _picture()
    out = model.scaler.upscale(picture, 4, model.data_path)
    assert out.size == (64, 64)
    assert out.tobytes() == app.upscalers.upscale(picture, 4, "4x-old-style").tobytes()


def test_load_spandrel_model_gives_a_descriptor(app):
    path = app.paths.models_dir / "SwinIR" / "swinir_x2.safetensors"
    descriptor = modelloader.load_spandrel_model(path, device="cpu", expected_architecture="SwinIR")
    assert descriptor.architecture.name == "SwinIR" and descriptor.scale == 2


def test_images_resize_image_uses_the_named_upscaler_or_the_setting(app):
    picture = _picture()
    out = images.resize_image(0, picture, 64, 64, upscaler_name="4x-old-style")
    assert out.tobytes() == app.upscalers.upscale(picture, 4, "4x-old-style").tobytes()
    app.options.set("upscaler_for_img2img", "4x-old-style")
    try:
        assert images.resize_image(0, picture, 64, 64).tobytes() == out.tobytes()
    finally:
        app.options.set("upscaler_for_img2img", None)
    plain = images.resize_image(0, picture, 64, 64)
    assert plain.tobytes() == picture.resize((64, 64), Image.Resampling.LANCZOS).tobytes()


def test_the_img2img_upscaler_setting_lists_the_registry_names(app):
    info = app.options.data_labels["upscaler_for_img2img"]
    assert "4x-old-style" in info.resolved_component_args()["choices"]


def test_a_tile_size_out_of_range_is_refused_with_a_400(client):
    response = client.post("/sdapi/v1/options", json={"ESRGAN_tile": 10_000})
    assert response.status_code == 400
    assert client.get("/sdapi/v1/options").json()["ESRGAN_tile"] == 192


def test_sd_upscale_offers_and_runs_the_model_upscalers(app):
    from modules.sumi.builtin_scripts import sd_upscale

    choices = sd_upscale.upscalers()
    assert [c.name for c in choices[:3]] == ["None", "Lanczos", "Nearest"]
    model = sd_upscale.find_upscaler("4x-old-style", choices)
    picture = _picture()
    out = sd_upscale.upscaled(picture, model, 2.0)
    assert out.size == (32, 32)
    assert out.tobytes() == app.upscalers.upscale(picture, 2.0, "4x-old-style").tobytes()


def test_an_upscaler_data_do_upscale_is_one_pass_of_the_model(app):
    model = {d.name: d for d in shared.sd_upscalers}["swinir_x2"]
    assert model.scaler is not None
    assert model.scaler.do_upscale(_picture(12), model.data_path).size == (24, 24)


def test_an_extensions_own_upscaler_runs_do_upscale_up_to_three_times(app):
    from modules.upscaler import Upscaler

    class Doubler(Upscaler):
        name = "Doubler"

        def do_upscale(self, img, selected_model):
            return img.resize((img.width * 2, img.height * 2))

    assert Doubler().upscale(_picture(16), 8).size == (128, 128)
    assert Doubler().upscale(_picture(16), 1).size == (16, 16)


def test_the_models_path_flags_hold_the_folders_in_use(app):
    assert shared.cmd_opts.esrgan_models_path == str(app.paths.models_dir / "ESRGAN")
    assert shared.cmd_opts.dat_models_path == str(app.paths.models_dir / "DAT")
