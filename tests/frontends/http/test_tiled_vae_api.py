"""Tiled VAE through the API on a real App (settings `sumi_tiled_vae`, tile size and overlap), and
`/sdapi/v1/memory` in A1111's shape."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

JOB = {"prompt": "a red circle", "steps": 2, "width": 256, "height": 192, "sampler_name": "Euler", "seed": 3}
TILES = {"sumi_tiled_vae_tile_size": 16, "sumi_tiled_vae_overlap": 4}
# Mean difference, in 0..255 pixel levels, between the tiled and the plain decode of the demo model
# (random-weight VAE, per-tile GroupNorm statistics; see docs/performance/tiled-vae.md).
TOLERANCE = 24.0


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui", loaded=True)


def _run(client, mode: str, **settings) -> tuple[np.ndarray, str]:
    body = {**JOB, "override_settings": {"sumi_tiled_vae": mode, **TILES, **settings}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    image = Image.open(io.BytesIO(base64.b64decode(data["images"][0]))).convert("RGB")
    return np.asarray(image).astype(float), json.loads(data["info"])["infotexts"][0]


def test_always_decodes_in_tiles_close_to_never_and_the_infotext_says_so(client):
    never, never_info = _run(client, "Never")
    always, always_info = _run(client, "Always")
    assert "Tiled VAE" not in never_info
    assert "Tiled VAE: decode 16/4" in always_info
    difference = np.abs(always - never).mean()
    assert 0 < difference < TOLERANCE


def test_auto_leaves_a_small_image_whole(client):
    auto, info = _run(client, "Auto")
    never, _ = _run(client, "Never")
    assert "Tiled VAE" not in info
    assert np.array_equal(auto, never)


def test_an_overlap_over_half_the_tile_is_a_clear_400(client):
    body = {**JOB, "override_settings": {"sumi_tiled_vae": "Always", **TILES, "sumi_tiled_vae_overlap": 12}}
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 400
    assert "overlap must be between 0 and half the tile size" in response.text


def test_memory_has_a1111s_shape_with_ram_figures_and_cuda_or_its_error(client):
    response = client.get("/sdapi/v1/memory")
    assert response.status_code == 200
    data = response.json()
    ram = data["ram"]
    assert {"free", "used", "total"} <= set(ram)
    assert 0 < ram["used"] < ram["total"] and 0 < ram["free"] <= ram["total"]
    assert 0 < ram["process"] <= ram["process_peak"] * 1.01 + 2**20
    cuda = data["cuda"]
    if "error" not in cuda:
        assert {"system", "active", "allocated", "reserved", "inactive", "events"} <= set(cuda)
        assert set(cuda["active"]) == {"current", "peak"} and set(cuda["events"]) == {"retries", "oom"}
    else:
        assert "CUDA" in cuda["error"]
