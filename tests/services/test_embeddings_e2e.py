"""Textual inversion through the API: files in embeddings/, used by name, listed, hashed, refreshed."""

from __future__ import annotations

import os
import time

import pytest
import torch
from safetensors.torch import save_file

from tests.app_support import generate

DEMO_WIDTH = 64  # the demo model's CLIP hidden size
BODY = {"steps": 2, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("ti"), "--nowebui")


def _write(app, name: str, vectors: torch.Tensor) -> None:
    path = app.paths.embeddings_dir / f"{name}.safetensors"
    save_file({"emb_params": vectors.contiguous()}, str(path))
    os.utime(path, (time.time() + 5, time.time() + 5))  # a visibly newer mtime for the refresh


def _generate(client, prompt: str) -> tuple[bytes, dict]:
    return generate(client, BODY, prompt)


def test_an_embedding_is_used_by_name_listed_and_hashed(app, client):
    _write(app, "shiny-style", torch.randn(2, DEMO_WIDTH, generator=torch.Generator().manual_seed(1)) * 5)
    _write(app, "too-wide", torch.randn(1, 128))
    plain, _ = _generate(client, "a fox, something")
    used, info = _generate(client, "a fox, shiny-style")
    assert used != plain
    assert 'TI hashes: "shiny-style: ' in info["infotexts"][0]
    listed = client.get("/sdapi/v1/embeddings").json()
    assert listed["loaded"]["shiny-style"]["vectors"] == 2
    assert "too-wide" in listed["skipped"]
    again, _ = _generate(client, "a fox, shiny-style")
    assert again == used


def test_a_changed_file_is_picked_up_at_the_next_job(app, client):
    _write(app, "swap", torch.zeros(1, DEMO_WIDTH))
    first, _ = _generate(client, "a fox swap")
    _write(app, "swap", torch.ones(1, DEMO_WIDTH) * 3)
    second, _ = _generate(client, "a fox swap")
    assert first != second


def test_the_token_counter_counts_an_embedding_as_its_vectors(app):
    app.queue.run("wait for the model", lambda: None)
    _write(app, "six-vectors", torch.zeros(6, DEMO_WIDTH))
    app.embeddings.refresh()
    assert app.text.count_tokens("six-vectors") == (6, 75)
    assert app.text.count_tokens("a six-vectors b") == (8, 75)
