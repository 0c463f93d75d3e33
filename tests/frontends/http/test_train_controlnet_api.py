"""Sumi's ControlNet training routes: `POST /sdapi/v1/train/controlnet` (answers when done, A1111's `info`
words plus the run id), `/train/controlnet/submit` (answers at once; the run is polled), the trained
model used at once by a txt2img unit through `alwayson_scripts.controlnet`, 4xx answers naming the field,
and the API login."""

from __future__ import annotations

import base64
import io
import time

import cv2
import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from tests.app_support import decode_pixels, local_client, post_txt2img

TRAIN = {
    "output_name": "api-canny",
    "data_root": "dataset",
    "preprocessor": "canny",
    "training_width": 64,
    "training_height": 64,
    "steps": 2,
    "learn_rate": 0.01,
}
TXT2IMG = {"prompt": "a square", "steps": 2, "width": 64, "height": 64, "seed": 4, "sampler_name": "Euler"}


def _square(corner: int) -> np.ndarray:
    image = np.full((64, 64, 3), 30, np.uint8)
    cv2.rectangle(image, (corner, corner), (corner + 30, corner + 30), (220, 200, 40), -1)
    return image


def _png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("train-cn-api"), "--api", "--nowebui", loaded=True)
    folder = app.paths.data_dir / "dataset"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(_square(6 + 20 * i)).save(folder / f"{i}-yellow square.png")
    return app


def test_train_controlnet_answers_when_done_and_a_txt2img_unit_uses_it_at_once(app, client):
    r = client.post("/sdapi/v1/train/controlnet", json=TRAIN)
    assert r.status_code == 200, r.text
    path = app.paths.controlnet_dir / "api-canny.safetensors"
    body = r.json()
    assert body["info"] == f"train controlnet complete: filename: {path} error: None"
    run = client.get(f"/sdapi/v1/training/runs/{body['run']}").json()
    assert run["kind"] == "controlnet" and run["status"] == "done"
    assert [p["step"] for p in run["losses"]] == [1, 2]
    assert _metadata(path)["ss_debiased_estimation"] == "False"
    [name] = [
        n for n in client.get("/controlnet/model_list").json()["model_list"] if n.startswith("api-canny")
    ]

    plain = decode_pixels(post_txt2img(client, TXT2IMG)["images"][0])
    unit = {"enabled": True, "module": "canny", "model": name, "image": _png_b64(_square(16))}
    payload = {**TXT2IMG, "alwayson_scripts": {"controlnet": {"args": [unit]}}}
    answer = post_txt2img(client, payload)
    assert f"Model: {name}" in answer["info"] and "Module: canny" in answer["info"]
    controlled = decode_pixels(answer["images"][0])
    assert controlled.shape == plain.shape and not np.array_equal(controlled, plain)
    assert len(answer["images"]) == 2  # the image and the detected map


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def test_submit_answers_at_once_with_a_run_to_poll_and_debiased_estimation_reaches_the_file(app, client):
    body = {**TRAIN, "output_name": "api-polled", "steps": 1, "debiased_estimation": True}
    r = client.post("/sdapi/v1/train/controlnet/submit", json=body)
    assert r.status_code == 200, r.text
    run_id = r.json()["run"]
    deadline = time.monotonic() + 120
    while (run := client.get(f"/sdapi/v1/training/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    assert run["status"] == "done", run
    assert run["files"] == ["models/ControlNet/api-polled.safetensors"]
    assert _metadata(app.paths.controlnet_dir / "api-polled.safetensors")["ss_debiased_estimation"] == "True"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TRAIN, "data_root": "missing"}, "data_root"),
        ({**TRAIN, "preprocessor": "", "output_name": "x"}, "conditioning_data_root"),
        ({**TRAIN, "preprocessor": "openpose"}, "preprocessor"),
        ({**TRAIN, "colour": "red"}, "colour"),
        ({**TRAIN, "steps": "many"}, "steps"),
        ({**TRAIN, "debiased_estimation": "yes"}, "debiased_estimation"),
        ({**TRAIN, "output_name": "a/b"}, "output_name"),
        ({**TRAIN, "save_precision": "fp8"}, "save_precision"),
        ({**TRAIN, "proportion_empty_prompts": 2}, "proportion_empty_prompts"),
    ],
)
@pytest.mark.parametrize("route", ["/sdapi/v1/train/controlnet", "/sdapi/v1/train/controlnet/submit"])
def test_bad_bodies_are_400_naming_the_field(app, client, route, body, field):
    runs = len(app.training.runs.runs)
    r = client.post(route, json=body)
    assert r.status_code == 400, r.text
    assert field in r.text
    assert len(app.training.runs.runs) == runs


def test_the_controlnet_routes_need_the_api_login(make_app, tmp_path):
    from webui import build_server

    app = make_app(tmp_path, "--api", "--nowebui", "--api-auth", "user:Train-Pass-31415", start=False)
    client = local_client(build_server(app))
    for route in ("train/controlnet", "train/controlnet/submit"):
        assert client.post(f"/sdapi/v1/{route}", json=TRAIN).status_code == 401
