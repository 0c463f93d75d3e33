"""A1111's `p.rng`: every batch has an `ImageRNG` of its seeds at the latent size before the scripts' batch
hooks run. Scripts read it (its `shape`), replace it (a random-resolution script makes one of the size it
picked; a seed script one of other seeds) or draw from it, and the batch's noise follows, as in A1111,
where `p.sample` starts from `p.rng.next()` and the sampler's noise comes from its generators."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/rng_probe.py": """
        import gradio as gr

        from modules import rng, scripts


        class Script(scripts.Script):
            def title(self):
                return "RNG probe"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Textbox(value="", label="Mode")]

            def before_process_batch(self, p, mode, **kwargs):
                seen = p.rng
                p.extra_generation_params["RNG seen"] = "x".join(str(v) for v in seen.shape) + f"/{seen.seeds}"
                if mode == "reseed":
                    p.rng = rng.ImageRNG(seen.shape, [s + 1 for s in p.seeds])
                elif mode == "resize":  # as a random-resolution script: a new size and an rng of it
                    p.width, p.height = 64, 128
                    c, *_ = seen.shape
                    p.rng = rng.ImageRNG((c, p.height // 8, p.width // 8), p.seeds)
                elif mode == "wrong shape":
                    p.rng = rng.ImageRNG((4, 3, 3), p.seeds)
                elif mode == "not an rng":
                    p.rng = "noise"

            def process_batch(self, p, mode, **kwargs):
                if mode == "draw":
                    p.rng.next()
    """,
}
BODY = {"prompt": "a red circle", "steps": 3, "width": 96, "height": 64, "seed": 9, "sampler_name": "Euler a"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "rng-probe", EXTENSION)
    return make_module_app(data, "--api", "--nowebui")


def _probe(mode: str) -> dict:
    return {"alwayson_scripts": {"RNG probe": {"args": [mode]}}}


def _job(client, body: dict, status: int = 200) -> tuple[np.ndarray, str]:
    result = post_txt2img(client, body, status)
    return decode_pixels(result["images"][0]).astype(np.int16), json.loads(result["info"])["infotexts"][0]


def test_scripts_see_the_batchs_noise_at_the_latent_size(client):
    _, infotext = _job(client, {**BODY, "batch_size": 2, **_probe("")})
    assert 'RNG seen: "4x8x12/[9, 10]"' in infotext


def test_a_script_that_reads_it_changes_nothing(client):
    probed, _ = _job(client, {**BODY, **_probe("")})
    plain, _ = _job(client, BODY)
    assert np.array_equal(probed, plain)


def test_an_rng_of_other_seeds_gives_those_seeds_images_sampler_noise_included(client):
    reseeded, infotext = _job(client, {**BODY, **_probe("reseed")})
    next_seed, _ = _job(client, {**BODY, "seed": 10})
    same_seed, _ = _job(client, BODY)
    assert np.array_equal(reseeded, next_seed)  # Euler a: the generators' later draws too
    assert not np.array_equal(reseeded, same_seed)
    assert "Seed: 9," in infotext  # the job's seed, as A1111 writes it


def test_a_random_resolution_script_gets_its_size(client):
    resized, _ = _job(client, {**BODY, **_probe("resize")})
    plain, _ = _job(client, {**BODY, "width": 64, "height": 128})
    assert resized.shape == (128, 64, 3) and np.array_equal(resized, plain)


def test_drawing_from_it_before_sampling_moves_the_noise_on(client):
    drawn, _ = _job(client, {**BODY, **_probe("draw")})
    plain, _ = _job(client, BODY)
    assert not np.array_equal(drawn, plain)


def test_an_rng_of_the_wrong_size_is_a_clear_error(client):
    response = client.post("/sdapi/v1/txt2img", json={**BODY, **_probe("wrong shape")})
    assert response.status_code == 400
    assert "p.rng gave noise of shape (1, 4, 3, 3)" in response.text
    assert client.post("/sdapi/v1/txt2img", json=BODY).status_code == 200  # the server goes on


def test_something_that_is_not_an_rng_is_a_clear_error(client):
    response = client.post("/sdapi/v1/txt2img", json={**BODY, **_probe("not an rng")})
    assert response.status_code == 400 and "p.rng to a str, which has no next()" in response.text


def test_img2img_noise_comes_from_it_too(client):
    from PIL import Image

    from tests.app_support import encode_png

    picture = encode_png(Image.new("RGB", (96, 64), (200, 40, 40)))
    body = {**BODY, "init_images": [picture], "denoising_strength": 0.8}

    def job(extra: dict) -> np.ndarray:
        result = client.post("/sdapi/v1/img2img", json={**body, **extra})
        assert result.status_code == 200, result.text
        return decode_pixels(result.json()["images"][0]).astype(np.int16)

    assert np.array_equal(job(_probe("reseed")), job({"seed": 10}))
    assert not np.array_equal(job(_probe("reseed")), job({}))
