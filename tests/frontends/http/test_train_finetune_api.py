"""Sumi's fine-tune / DreamBooth routes: `POST /sdapi/v1/train/finetune` (answers when done, A1111's `info`
words plus the run id; the checkpoint is listed at once), `/train/finetune/submit` (answers at once; the
run is polled), 400 answers naming the field, and the API login."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from tests.app_support import local_client

TRAIN = {
    "output_name": "api-tuned",
    "data_root": "dataset",
    "instance_prompt": "sks tile",
    "training_width": 64,
    "training_height": 64,
    "steps": 2,
    "learn_rate": 0.001,
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("train-finetune-api"), "--api", "--nowebui", loaded=True)
    folder = app.paths.data_dir / "dataset"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 60 + 100 * i, np.uint8)).save(folder / f"{i}-grey tile.png")
    return app


def test_train_finetune_answers_when_done_and_the_checkpoint_is_listed(app, client):
    r = client.post("/sdapi/v1/train/finetune", json=TRAIN)
    assert r.status_code == 200, r.text
    path = app.paths.ckpt_dirs[0] / "api-tuned.safetensors"
    body = r.json()
    assert body["info"] == f"train finetune complete: filename: {path} error: None"
    run = client.get(f"/sdapi/v1/training/runs/{body['run']}").json()
    assert run["kind"] == "finetune" and run["status"] == "done"
    assert [p["step"] for p in run["losses"]] == [1, 2]
    titles = {m["title"] for m in client.get("/sdapi/v1/sd-models").json()}
    assert any(t.startswith("api-tuned.safetensors") for t in titles)
    assert _metadata(path)["ss_debiased_estimation"] == "False"


def _metadata(path) -> dict[str, str]:
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def test_submit_answers_at_once_with_a_run_to_poll_and_debiased_estimation_reaches_the_file(app, client):
    body = {**TRAIN, "output_name": "api-polled", "steps": 1, "debiased_estimation": True}
    r = client.post("/sdapi/v1/train/finetune/submit", json=body)
    assert r.status_code == 200, r.text
    run_id = r.json()["run"]
    deadline = time.monotonic() + 120
    while (run := client.get(f"/sdapi/v1/training/runs/{run_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    assert run["status"] == "done", run
    assert run["files"] == ["models/Stable-diffusion/api-polled.safetensors"]
    assert _metadata(app.paths.ckpt_dirs[0] / "api-polled.safetensors")["ss_debiased_estimation"] == "True"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TRAIN, "data_root": "missing"}, "data_root"),
        ({**TRAIN, "class_data_root": "../.."}, "class_data_root"),
        ({**TRAIN, "class_prompt": "a tile"}, "class_prompt"),
        ({**TRAIN, "colour": "red"}, "colour"),
        ({**TRAIN, "steps": "many"}, "steps"),
        ({**TRAIN, "debiased_estimation": "yes"}, "debiased_estimation"),
        ({**TRAIN, "output_name": "a/b"}, "output_name"),
        ({**TRAIN, "save_precision": "fp8"}, "save_precision"),
        ({**TRAIN, "ema_decay": 2}, "ema_decay"),
    ],
)
@pytest.mark.parametrize("route", ["/sdapi/v1/train/finetune", "/sdapi/v1/train/finetune/submit"])
def test_bad_bodies_are_400_naming_the_field(app, client, route, body, field):
    runs = len(app.training.runs.runs)
    r = client.post(route, json=body)
    assert r.status_code == 400, r.text
    assert field in r.text
    assert len(app.training.runs.runs) == runs


def test_the_finetune_routes_need_the_api_login(make_app, tmp_path):
    from webui import build_server

    app = make_app(tmp_path, "--api", "--nowebui", "--api-auth", "user:Train-Pass-31415", start=False)
    client = local_client(build_server(app))
    for route in ("train/finetune", "train/finetune/submit"):
        assert client.post(f"/sdapi/v1/{route}", json=TRAIN).status_code == 401
