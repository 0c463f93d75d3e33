"""sd-webui-controlnet's `external_code`, as other extensions drive ControlNet with it: an extension that
finds "sd-webui-controlnet" among the active extensions and imports its external_code by the dotted name
ADetailer builds from the extension's path, then redraws each image in an inner img2img job with a
ControlNet unit (ADetailer's ControlNet model option), gets the same image as an img2img request with
that unit."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from tests.app_support import post_txt2img
from tests.fixtures.files import write_files
from tests.fixtures.tiny_controlnets import write_lllyasviel
from tests.fixtures.tiny_models import jitter

# ADetailer's way to reach ControlNet (controlnet_ext.py), and its inner img2img job.
DRIVER = {
    "scripts/cn_driver.py": """
        import importlib
        from pathlib import Path

        import gradio as gr

        import modules.scripts as scripts
        from modules import extensions
        from modules.processing import StableDiffusionProcessingImg2Img, process_images


        def external_code():
            for extension in extensions.active():
                if "sd-webui-controlnet" in extension.name:
                    base = ".".join(Path(extension.path).parts[-2:])
                    return importlib.import_module(base + ".scripts.external_code", "external_code")
            return None


        class Driver(scripts.Script):
            def title(self):
                return "ControlNet driver"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Dropdown(["off", "plain", "controlnet"], value="off", label="Redraw")]

            def postprocess_image(self, p, pp, mode):
                if mode == "off":
                    return
                inner = StableDiffusionProcessingImg2Img(
                    prompt="a blue bird", steps=3, width=pp.image.width, height=pp.image.height, seed=5,
                    sampler_name="Euler", init_images=[pp.image], denoising_strength=0.8,
                    do_not_save_samples=True, do_not_save_grid=True,
                )
                cn = external_code()
                if mode == "controlnet":
                    unit = cn.ControlNetUnit(
                        model="control_tiny_canny", module="canny", weight=1.5, pixel_perfect=True,
                        control_mode=cn.ControlMode.BALANCED, guidance_start=0.0, guidance_end=1.0,
                    )
                    cn.update_cn_script_in_processing(inner, [unit])
                    p.extra_generation_params["Driver units"] = len(cn.get_all_units_in_processing(inner))
                p.extra_generation_params["Driver models"] = ",".join(cn.get_models())
                pp.image = process_images(inner).images[0]
    """,
}
BODY = {"prompt": "a red fox", "steps": 3, "width": 64, "height": 64, "seed": 21, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "cn-driver", DRIVER)
    app = make_module_app(data, "--api", "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    write_lllyasviel(
        app.paths.controlnet_dir / "control_tiny_canny.safetensors",
        jitter(ControlNetModel.from_unet(demo.unet), 5),
    )
    app.controlnet.models.refresh()
    return app


def _driven(client, mode: str) -> dict:
    body = {**BODY, "alwayson_scripts": {"ControlNet driver": {"args": [mode]}}}
    return post_txt2img(client, body, 200)


def _pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


def _png(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_controlnet_is_listed_as_the_extension_other_extensions_look_for(app):
    from modules import extensions

    found = [e for e in extensions.active() if e.name == "sd-webui-controlnet"]
    assert len(found) == 1 and found[0].is_builtin


def test_an_extension_drives_an_inner_job_s_controlnet_through_external_code(client, app):
    first = _pixels(_driven(client, "off")["images"][0])
    plain = _driven(client, "plain")
    driven = _driven(client, "controlnet")
    info = json.loads(driven["info"])["infotexts"][0]
    assert "Driver units: 1" in info and "control_tiny_canny" in info
    with_control, without = _pixels(driven["images"][0]), _pixels(plain["images"][0])
    assert not np.array_equal(with_control, without)  # the unit changed the redraw
    unit = {
        "enabled": True,
        "model": "control_tiny_canny",
        "module": "canny",
        "weight": 1.5,
        "pixel_perfect": True,
    }
    request = {
        "prompt": "a blue bird", "steps": 3, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler",
        "init_images": [_png(first)], "denoising_strength": 0.8,
        "alwayson_scripts": {"controlnet": {"args": [unit]}},
    }  # fmt: skip
    response = client.post("/sdapi/v1/img2img", json=request)
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(with_control, _pixels(response.json()["images"][0]))


def test_external_code_converts_units_both_ways(app):
    import importlib

    cn = importlib.import_module("extensions.sd-webui-controlnet.scripts.external_code")
    assert cn is importlib.import_module("extensions_builtin.sd-webui-controlnet.scripts.external_code")

    class Job:
        controlnet_units: list = []

    job = Job()
    image = np.zeros((32, 32, 3), np.uint8)
    cn.update_cn_script_in_processing(
        job,
        [
            cn.ControlNetUnit(
                module="canny", model="control_tiny_canny", image=image, resize_mode=cn.ResizeMode.OUTER_FIT
            ),
            {
                "module": "none",
                "model": "None",
                "enabled": False,
                "control_mode": "ControlNet is more important",
            },
        ],
    )
    back = cn.get_all_units_in_processing(job)
    assert [u.module for u in back] == ["canny", "none"] and [u.enabled for u in back] == [True, False]
    assert back[0].resize_mode is cn.ResizeMode.OUTER_FIT and back[1].control_mode is cn.ControlMode.CONTROL
    assert "canny" in cn.get_modules() and "control_tiny_canny" in " ".join(cn.get_models())
    cn.update_cn_script_in_processing(
        job, [cn.ControlNetUnit(module="reference_only", input_mode=cn.InputMode.BATCH, batch_images="refs")]
    )
    (batch,) = cn.get_all_units_in_processing(job)
    assert batch.input_mode is cn.InputMode.BATCH and batch.batch_images == "refs"
    assert cn.get_max_models_num() == 3


def test_a_users_copy_of_the_extension_is_not_loaded_over_the_built_in_one(tmp_path, app):
    from modules.sumi.services.extensions.manager import ExtensionManager

    user = tmp_path / "extensions"
    write_files(user / "sd-webui-controlnet", {"scripts/controlnet.py": "raise RuntimeError('not me')\n"})
    manager = ExtensionManager(user, app.paths.extensions_builtin_dir, app.options, None, data_dir=tmp_path)
    found = [e for e in manager.list(refresh=True) if e.name == "sd-webui-controlnet"]
    assert len(found) == 1 and found[0].is_builtin
    assert any("is not loaded: Sumi has it built in" in problem for problem in manager.problems)


@pytest.mark.parametrize("name", ["multidiffusion-upscaler-for-automatic1111", "sd-webui-lora-block-weight"])
def test_extensions_sumi_has_built_in_are_not_loaded_from_the_users_folder(tmp_path, app, name):
    from modules.sumi.services.extensions.manager import ExtensionManager

    user = tmp_path / "extensions"
    write_files(user / name, {"scripts/main.py": "raise RuntimeError('not me')\n"})
    manager = ExtensionManager(user, app.paths.extensions_builtin_dir, app.options, None, data_dir=tmp_path)
    found = [e for e in manager.list(refresh=True) if e.name == name]
    assert len(found) == 1 and found[0].is_builtin
    assert any(
        f'"{name}" in' in problem and "Sumi has it built in" in problem for problem in manager.problems
    )


def test_update_cn_script_says_once_that_units_go_on_the_job(caplog):
    import importlib
    import logging

    cn = importlib.import_module("extensions.sd-webui-controlnet.scripts.external_code")
    cn._warned.clear()  # noqa: SLF001
    args = (1, 2, 3)
    with caplog.at_level(logging.WARNING):
        assert cn.update_cn_script(None, args, [cn.ControlNetUnit(module="canny")]) is args
        cn.update_cn_script(None, args, [cn.ControlNetUnit(module="canny")])
    said = [r.getMessage() for r in caplog.records if "update_cn_script_in_processing" in r.getMessage()]
    assert len(said) == 1
