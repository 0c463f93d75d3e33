"""Opt postprocessing_enable_in_main_ui (A1111's scripts_auto_postprocessing): a named Extras script
becomes an always-on txt2img script, runs on every generated image and writes its infotext entries."""

from __future__ import annotations

import json

import pytest

from tests.app_support import decode_pixels, post_txt2img


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("main-ui-pp") / "data"
    data.mkdir(parents=True)
    (data / "config.json").write_text(json.dumps({"postprocessing_enable_in_main_ui": ["Simple Upscale"]}))
    return make_module_app(data, "--nowebui")


BODY = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


def test_simple_upscale_runs_on_txt2img_images_and_is_in_the_infotext(client):
    assert "simple upscale" in client.get("/sdapi/v1/scripts").json()["txt2img"]
    body = post_txt2img(client, {**BODY, "alwayson_scripts": {"Simple Upscale": {"args": [2, "Lanczos"]}}})
    assert decode_pixels(body["images"][0]).shape[:2] == (128, 128)
    info = json.loads(body["info"])["infotexts"][0]
    assert "Postprocess upscaler: Lanczos" in info and "Postprocess upscale by: 2" in info


def test_with_its_defaults_nothing_changes(client):
    body = post_txt2img(client, BODY)  # Upscaler "None" by default: the image as generated
    assert decode_pixels(body["images"][0]).shape[:2] == (64, 64)


def test_a_main_ui_only_script_is_not_an_extras_operation(app):
    assert "Simple Upscale" not in [s.name for s in app.scripts.postproc.scripts_in_preferred_order()]


def test_a1111_run_extras_upscales_and_saves(app):
    from PIL import Image

    from modules import postprocessing

    picture = Image.new("RGB", (64, 48), (10, 200, 30))
    images, html_info, _ = postprocessing.run_extras(
        0, 0, picture, None, "", "", True, 0, 0, 0, 2, 512, 512, True, "Lanczos", "None", 0, False
    )
    assert images[0].size == (128, 96) and "Postprocess upscaler: Lanczos" in html_info
    assert list((app.paths.data_dir / "outputs" / "extras-images").glob("*.png"))
