"""Tiled VAE through the A1111 API under the extension's script name and args: the job's encode and decode
run in the extension's tile sizes (the infotext says so), the picture stays close to the plain one, and the
fast encoder's colour fix reaches the policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modules.sumi.builtin_scripts.tilevae import job_policy
from modules.sumi.engine.errors import InvalidRequestError
from tests.app_support import decode_pixels, encode_png, post_txt2img

BODY = {"steps": 2, "width": 128, "height": 128, "seed": 4, "sampler_name": "Euler", "prompt": "a red star"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("tiled-vae"), "--nowebui")


def _vae_args(encoder=256, decoder=8, fast_decoder=True, fast_encoder=True, color_fix=False) -> list:
    return [True, encoder, decoder, True, fast_decoder, fast_encoder, color_fix]


def test_the_decode_runs_in_the_extensions_tiles_and_stays_close_to_the_plain_one(client):
    plain = post_txt2img(client, BODY)
    tiled = post_txt2img(client, {**BODY, "alwayson_scripts": {"Tiled VAE": {"args": _vae_args()}}})
    assert "Tiled VAE" not in json.loads(plain["info"])["infotexts"][0]
    assert "Tiled VAE: decode 8/4" in json.loads(tiled["info"])["infotexts"][0]
    a = decode_pixels(plain["images"][0]).astype(int)
    b = decode_pixels(tiled["images"][0]).astype(int)
    assert np.abs(a - b).mean() < 6  # the same picture, tile seams blended away


def test_img2img_encodes_in_the_encoder_tiles(client):
    picture = Image.fromarray(decode_pixels(post_txt2img(client, BODY)["images"][0]))
    body = {**BODY, "init_images": [encode_png(picture)], "denoising_strength": 0.3}
    body["alwayson_scripts"] = {"Tiled VAE": {"args": _vae_args(encoder=64, decoder=8)}}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    assert "Tiled VAE: encode+decode" in json.loads(r.json()["info"])["infotexts"][0]


def test_tiled_vae_and_tiled_diffusion_together(client):
    diffusion = [True, "MultiDiffusion", False, True, 1024, 1024, 8, 8, 4, 4, "None", 2.0]
    scripts = {"Tiled VAE": {"args": _vae_args()}, "Tiled Diffusion": {"args": diffusion}}
    infotext = json.loads(post_txt2img(client, {**BODY, "alwayson_scripts": scripts})["info"])["infotexts"][0]
    assert "Tiled VAE: decode" in infotext and "Tiled Diffusion: " in infotext


def test_the_colour_fix_encodes_and_reaches_the_policy(client):
    picture = Image.fromarray(decode_pixels(post_txt2img(client, BODY)["images"][0]))
    body = {**BODY, "init_images": [encode_png(picture)], "denoising_strength": 0.3}
    body["alwayson_scripts"] = {"Tiled VAE": {"args": _vae_args(encoder=64, decoder=8, color_fix=True)}}
    r = client.post("/sdapi/v1/img2img", json=body)
    assert r.status_code == 200, r.text
    assert job_policy(1536, 96, True, True, True).encode_color_fix
    assert not job_policy(1536, 96, True, False, True).encode_color_fix  # a fix of the fast encoder only


def test_the_policy_keeps_the_encoder_and_decoder_sizes_apart():
    policy = job_policy(1536, 96, True, False)
    assert policy.mode == "Always" and policy.tile_for("decode") == 96 and policy.tile_for("encode") == 192
    assert policy.estimates_norms("decode") and not policy.estimates_norms("encode")
    with pytest.raises(InvalidRequestError, match="at least 8"):
        job_policy(1536, 4, True, True)
