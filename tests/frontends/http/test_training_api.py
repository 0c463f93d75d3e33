"""A1111's training routes: create/embedding, create/hypernetwork, train/embedding, train/hypernetwork,
with A1111's bodies and `info` answers, and 4xx answers that name the field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.app_support import local_client

TRAIN = {
    "data_root": "dataset",
    "training_width": 64,
    "training_height": 64,
    "steps": 2,
    "create_image_every": 0,
    "template_filename": "style_filewords.txt",
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("train-api"), "--api", "--nowebui", loaded=True)
    folder = app.paths.data_dir / "dataset"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 60 + 100 * i, np.uint8)).save(folder / f"{i}-grey tile.png")
    return app


def test_create_and_train_an_embedding(app, client):
    r = client.post(
        "/sdapi/v1/create/embedding",
        json={"name": "api-emb", "num_vectors_per_token": 2, "overwrite_old": False, "init_text": "tile"},
    )
    assert r.status_code == 200, r.text
    path = app.paths.embeddings_dir / "api-emb.pt"
    assert r.json() == {"info": f"create embedding filename: {path}"}
    assert "api-emb" in client.get("/sdapi/v1/embeddings").json()["loaded"]
    r = client.post(
        "/sdapi/v1/train/embedding",
        json={**TRAIN, "id_task": "task(1)", "embedding_name": "api-emb", "learn_rate": 0.01},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"info": f"train embedding complete: filename: {path} error: None"}
    assert torch.load(path, weights_only=True)["step"] == 2
    assert client.get("/sdapi/v1/embeddings").json()["loaded"]["api-emb"]["step"] == 2


def test_create_and_train_a_hypernetwork(app, client):
    dim = int(app.models.get().sd.unet.config.cross_attention_dim)
    body = {
        "name": "api-hn",
        "enable_sizes": [str(dim)],
        "layer_structure": "1, 1.5, 1",
        "activation_func": "relu",
        "weight_init": "KaimingNormal",
        "add_layer_norm": True,
    }
    r = client.post("/sdapi/v1/create/hypernetwork", json=body)
    assert r.status_code == 200, r.text
    path = app.paths.hypernetwork_dir / "api-hn.pt"
    assert r.json() == {"info": f"create hypernetwork filename: {path}"}
    assert any(h["name"] == "api-hn" for h in client.get("/sdapi/v1/hypernetworks").json())
    r = client.post(
        "/sdapi/v1/train/hypernetwork",
        json={**TRAIN, "hypernetwork_name": "api-hn", "template_filename": "hypernetwork.txt"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"info": f"train embedding complete: filename: {path} error: None"}  # A1111's words
    data = torch.load(path, weights_only=True)
    assert data["step"] == 2 and data["layer_structure"] == [1.0, 1.5, 1.0] and data["is_layer_norm"] is True


@pytest.mark.parametrize(
    ("route", "body", "status", "field"),
    [
        ("/sdapi/v1/create/embedding", {"name": "x", "colour": "red"}, 422, "colour"),
        (
            "/sdapi/v1/create/embedding",
            {"name": "x", "num_vectors_per_token": "2"},
            422,
            "num_vectors_per_token",
        ),
        (
            "/sdapi/v1/create/hypernetwork",
            {"name": "x", "enable_sizes": [768], "weight_init": "Zeros"},
            400,
            "weight_init",
        ),
        (
            "/sdapi/v1/create/hypernetwork",
            {"name": "x", "enable_sizes": [768], "layer_structure": "2, 1"},
            400,
            "layer_structure",
        ),
        ("/sdapi/v1/train/embedding", {**TRAIN, "embedding_name": "x", "bogus": 1}, 400, "bogus"),
        ("/sdapi/v1/train/embedding", {**TRAIN, "embedding_name": "x", "steps": "many"}, 400, "steps"),
        ("/sdapi/v1/train/embedding", {**TRAIN, "embedding_name": "nobody"}, 400, "embedding_name"),
        (
            "/sdapi/v1/train/embedding",
            {**TRAIN, "embedding_name": "x", "data_root": "missing"},
            400,
            "data_root",
        ),
        (
            "/sdapi/v1/train/hypernetwork",
            {**TRAIN, "hypernetwork_name": "x", "clip_grad_mode": "max"},
            400,
            "clip_grad_mode",
        ),
        ("/sdapi/v1/train/hypernetwork", {**TRAIN, "hypernetwork_name": "nobody"}, 400, "hypernetwork_name"),
    ],
)
def test_bad_bodies_are_4xx_naming_the_field(client, route, body, status, field):
    r = client.post(route, json=body)
    assert r.status_code == status, r.text
    assert field in r.text


def test_creating_over_an_existing_file_needs_overwrite_old(app, client):
    body = {"name": "twice", "num_vectors_per_token": 1}
    assert client.post("/sdapi/v1/create/embedding", json=body).status_code == 200
    r = client.post("/sdapi/v1/create/embedding", json=body)
    assert r.status_code == 400 and "already exists" in r.json()["errors"]
    assert client.post("/sdapi/v1/create/embedding", json={**body, "overwrite_old": True}).status_code == 200


def test_the_training_routes_need_the_api_login(make_app, tmp_path):
    from webui import build_server

    app = make_app(tmp_path, "--api", "--nowebui", "--api-auth", "user:Train-Pass-31415", start=False)
    client = local_client(build_server(app))
    for route in ("create/embedding", "create/hypernetwork", "train/embedding", "train/hypernetwork"):
        assert client.post(f"/sdapi/v1/{route}", json={}).status_code == 401


def test_training_runs_are_listed_with_their_loss_curve_and_files(app, client):
    r = client.post(
        "/sdapi/v1/create/embedding",
        json={"name": "runs-emb", "num_vectors_per_token": 1, "init_text": "tile"},
    )
    assert r.status_code == 200, r.text
    r = client.post("/sdapi/v1/train/embedding", json={**TRAIN, "embedding_name": "runs-emb", "steps": 3})
    assert r.status_code == 200, r.text
    runs = client.get("/sdapi/v1/training/runs").json()
    mine = [run for run in runs if run["name"] == "runs-emb"]
    assert len(mine) == 1 and mine[0]["status"] == "done" and mine[0]["step"] == mine[0]["steps"] == 3
    assert mine[0]["files"] == ["embeddings/runs-emb.pt"]  # relative to the data folder
    detail = client.get(f"/sdapi/v1/training/runs/{mine[0]['id']}").json()
    assert [p["step"] for p in detail["losses"]] == [1, 2, 3]
    assert all(p["loss"] > 0 and p["learn_rate"] == 0.005 for p in detail["losses"])
    missing = client.get("/sdapi/v1/training/runs/no-such-run")
    assert missing.status_code == 404 and "no-such-run" in missing.text
