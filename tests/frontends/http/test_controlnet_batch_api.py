"""sd-webui-controlnet's batch input mode: a unit with `input_mode: "batch"` runs the job once per picture
of its folder (or list), writes the results to `output_dir` named after the pictures, pairs the pictures
with img2img's Batch tab input images, and never reads outside the data folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.controlnet.units import unit_from_dict
from modules.sumi.services.jobs.img2img_batch import BatchFolders
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from tests.app_support import decode_pixels, encode_png, post_txt2img

BODY = {"prompt": "a fox", "steps": 3, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}
NAMES = ("apple", "bird", "cloud")


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("cn-batch"), "--nowebui")
    folder = app.paths.data_dir / "control-pictures"
    folder.mkdir()
    for seed, name in enumerate(NAMES):
        Image.fromarray(_picture(seed)).save(folder / f"{name}.png")
    (folder / "notes.txt").write_text("not a picture")
    return app


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8))


def _png(array: np.ndarray) -> str:
    return encode_png(Image.fromarray(array))


_pixels = decode_pixels


def _job(client, status: int = 200, **unit) -> dict:
    base = {"enabled": True, "module": "reference_only"}
    body = {**BODY, "alwayson_scripts": {"controlnet": {"args": [{**base, **unit}]}}}
    return post_txt2img(client, body, status)


def test_a_batch_unit_runs_the_job_once_per_picture_of_its_folder(client):
    result = _job(client, input_mode="batch", batch_images="control-pictures")
    assert len(result["images"]) == 3  # the text file is not a picture; no detected maps in batch mode
    for seed, image in enumerate(result["images"]):
        single = _job(client, image=_png(_picture(seed)), save_detected_map=False)["images"][0]
        np.testing.assert_array_equal(_pixels(image), _pixels(single))  # same seed, that picture
    assert json.loads(result["info"])["seed"] == 3


def test_results_go_to_the_output_folder_named_after_the_pictures(app, client):
    _job(client, input_mode="batch", batch_images="control-pictures", output_dir="cn-out")
    written = sorted(p.name for p in (app.paths.data_dir / "cn-out").iterdir())
    assert written == [f"{name}.png" for name in NAMES]
    with Image.open(app.paths.data_dir / "cn-out" / "bird.png") as image:
        assert "ControlNet 0" in image.info["parameters"]


def test_a_list_of_pictures_works_and_bad_batches_are_refused(client, tmp_path):
    listed = _job(client, input_mode="batch", batch_images=[_png(_picture(0)), _png(_picture(1))])
    assert len(listed["images"]) == 2
    outside = _job(client, 400, input_mode="batch", batch_images=str(tmp_path))["detail"]
    assert "outside the data folder" in outside and "--gradio-allowed-path" in outside
    assert "does not exist" in _job(client, 400, input_mode="batch", batch_images="no-such-folder")["detail"]
    assert (
        "simple, batch, merge" in _job(client, 400, input_mode="sideways", image=_png(_picture(0)))["detail"]
    )
    wrong_out = _job(
        client, 400, input_mode="batch", batch_images="control-pictures", output_dir=str(tmp_path)
    )
    assert "ControlNet batch output folder" in wrong_out["detail"]


def test_img2img_batch_pairs_each_input_image_with_its_picture(app, tmp_path):
    inputs = app.paths.data_dir / "i2i-inputs"
    inputs.mkdir()
    for seed, name in enumerate(("a", "b")):
        Image.fromarray(_picture(10 + seed)).save(inputs / f"{name}.png")
    unit = unit_from_dict(
        {
            "enabled": True,
            "module": "reference_only",
            "input_mode": "batch",
            "batch_images": "control-pictures",
        }
    )
    p = StableDiffusionProcessingImg2Img(
        prompt="a fox", steps=3, width=64, height=64, seed=5, denoising_strength=0.6, sampler_name="Euler"
    )
    p.controlnet_units = [unit]
    batch = app.runner.img2img_batch(p, BatchFolders(input_dir=str(inputs)))
    assert len(batch.images) == 2
    for k, name in enumerate(("a", "b")):
        single = StableDiffusionProcessingImg2Img(
            prompt="a fox", steps=3, width=64, height=64, seed=5, denoising_strength=0.6, sampler_name="Euler"
        )
        single.init_images = [Image.open(inputs / f"{name}.png")]
        single.controlnet_units = [
            unit_from_dict(
                {
                    "enabled": True,
                    "module": "reference_only",
                    "image": _png(_picture(k)),
                    "save_detected_map": False,
                }
            )
        ]
        np.testing.assert_array_equal(
            np.asarray(batch.images[k]), np.asarray(app.runner.img2img(single).images[0])
        )


def test_merge_splits_a_unit_s_weight_over_its_pictures(client):
    pictures = [{"image": _png(_picture(0))}, {"image": _png(_picture(1))}]
    merged = _job(client, input_mode="merge", image=pictures, save_detected_map=False)
    two_units = {
        **BODY,
        "alwayson_scripts": {
            "controlnet": {
                "args": [
                    {
                        "enabled": True,
                        "module": "reference_only",
                        "image": p["image"],
                        "weight": 0.5,
                        "save_detected_map": False,
                    }
                    for p in pictures
                ]
            }
        },
    }
    np.testing.assert_array_equal(
        _pixels(merged["images"][0]), _pixels(post_txt2img(client, two_units)["images"][0])
    )
