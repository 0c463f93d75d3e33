"""The compiled fast path through the API: the `sumi_compile_unet` setting and the `--compile` flag give the
eager image within tolerance (max 2 of 255 per channel), the first request at a size says
"compiling (once)" in /sdapi/v1/progress, and the second request does not compile again.

Cost: one inductor compilation of the tiny UNet per App (64x64 images, batch 2 with CFG), ~10 s each with a
warm inductor cache on the 2-core dev machine; a cold cache takes minutes."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.accel import compiled, openvino_graph
from modules.sumi.engine.accel.compiled import CompileConfig

SMALL = {
    "prompt": "a red circle",
    "negative_prompt": "blue",
    "steps": 3,
    "width": 64,
    "height": 64,
    "sampler_name": "Euler",
    "seed": 7,
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory, tiny_sd1_ckpt):
    data = tmp_path_factory.mktemp("data")
    return make_module_app(data, "--api", "--nowebui", "--ckpt", str(tiny_sd1_ckpt[0]), loaded=True)


def _pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = base64.b64decode(response.json()["images"][0])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _txt2img_watching_progress(client) -> tuple[np.ndarray, list[str]]:
    """One request while another thread reads /sdapi/v1/progress: (image, the progress texts seen)."""
    seen: list[str] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            text = client.get("/sdapi/v1/progress").json()["textinfo"]
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        response = client.post("/sdapi/v1/txt2img", json=SMALL)
    finally:
        done.set()
        watcher.join(30)
    return _pixels(response), seen


def test_the_setting_gives_the_eager_image_and_compiles_once(app, client):
    eager = _pixels(client.post("/sdapi/v1/txt2img", json=SMALL))
    assert compiled.cache_of(app.models.active.sd) is None
    assert client.post("/sdapi/v1/options", json={"sumi_compile_unet": "UNet"}).status_code == 200
    try:
        first, seen = _txt2img_watching_progress(client)
        cache = compiled.cache_of(app.models.active.sd)
        assert cache is not None and cache.compiles == 1
        assert any(t.startswith("compiling (once): UNet for 8x8 latents, batch 2") for t in seen), seen
        assert np.abs(first - eager).max() <= 2
        second, seen = _txt2img_watching_progress(client)
        assert cache.compiles == 1 and not any("compiling" in t for t in seen)
        assert np.array_equal(second, first)
    finally:
        client.post("/sdapi/v1/options", json={"sumi_compile_unet": "Off"})
    client.post("/sdapi/v1/txt2img", json=SMALL)
    assert compiled.cache_of(app.models.active.sd) is None  # Off again: the next job runs eager


def test_an_unknown_compile_choice_is_refused(client):
    response = client.post("/sdapi/v1/options", json={"sumi_compile_unet": "Everything"})
    assert 400 <= response.status_code < 500
    assert client.get("/sdapi/v1/options").json()["sumi_compile_unet"] == "Off"


def test_the_compile_flag_turns_the_unet_on(app, client, make_app, tmp_path, tiny_sd1_ckpt):
    from tests.app_support import local_client
    from webui import build_server

    eager = _pixels(client.post("/sdapi/v1/txt2img", json=SMALL))
    flagged = make_app(
        tmp_path, "--api", "--nowebui", "--ckpt", str(tiny_sd1_ckpt[0]), "--compile", loaded=True
    )
    assert flagged.models.compile_config() == CompileConfig(unet=True, vae_decode=False)
    other = local_client(build_server(flagged))
    image = _pixels(other.post("/sdapi/v1/txt2img", json=SMALL))
    cache = compiled.cache_of(flagged.models.active.sd)
    assert cache is not None and cache.compiles == 1
    assert np.abs(image - eager).max() <= 2


@pytest.mark.skipif(not openvino_graph.available(), reason="needs openvino (requirements-test)")
def test_the_openvino_choice_gives_the_eager_image_and_traces_once_per_part(app, client):
    eager = _pixels(client.post("/sdapi/v1/txt2img", json=SMALL))
    choice = "OpenVINO: UNet + VAE decode"
    assert client.post("/sdapi/v1/options", json={"sumi_compile_unet": choice}).status_code == 200
    try:
        first, seen = _txt2img_watching_progress(client)
        cache = compiled.cache_of(app.models.active.sd)
        assert cache is not None and cache.config.backend == "openvino"
        assert cache.compiles == 2  # the UNet's graph and the VAE decode's
        assert any(t.startswith("compiling (once): UNet for 8x8 latents, batch 2") for t in seen), seen
        assert np.abs(first - eager).max() <= 3  # the demo VAE runs bf16 on this CPU: OpenVINO's bf16 kernels
        second, seen = _txt2img_watching_progress(client)
        assert cache.compiles == 2 and not any("compiling" in t for t in seen)
        assert np.array_equal(second, first)
    finally:
        client.post("/sdapi/v1/options", json={"sumi_compile_unet": "Off"})


def test_the_openvino_choice_is_refused_with_the_install_command_when_it_is_missing(client, monkeypatch):
    monkeypatch.setattr(openvino_graph, "available", lambda: False)
    response = client.post("/sdapi/v1/options", json={"sumi_compile_unet": "OpenVINO: UNet"})
    assert response.status_code == 400
    assert "pip install openvino" in response.text
    assert client.get("/sdapi/v1/options").json()["sumi_compile_unet"] == "Off"


def test_the_use_openvino_flag_turns_openvino_on_for_the_unet_and_vae_decode(make_app, tmp_path):
    flagged = make_app(tmp_path, "--api", "--nowebui", "--use-openvino")
    assert flagged.models.compile_config() == CompileConfig(vae_decode=True, backend="openvino")


def test_the_use_openvino_flag_without_the_package_says_how_to_install_it(
    make_app, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(openvino_graph, "available", lambda: False)
    with caplog.at_level("WARNING"):
        make_app(tmp_path, "--api", "--nowebui", "--use-openvino")
    assert any("--use-openvino" in r.message and "pip install openvino" in r.message for r in caplog.records)
