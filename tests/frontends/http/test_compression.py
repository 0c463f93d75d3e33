"""Responses are gzip-compressed for clients that accept it, as A1111 serves them: the page's config and
the API's JSON; small bodies, and clients that do not ask, get them as they are."""

from __future__ import annotations

import base64
import gzip
import io
import json

import pytest
from PIL import Image

GZIP = {"Accept-Encoding": "gzip"}
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api")


def test_the_pages_config_comes_compressed_to_a_tenth_and_decodes_to_the_same_json(client):
    packed = client.get("/config", headers=GZIP)
    plain = client.get("/config", headers=PLAIN)
    assert packed.status_code == plain.status_code == 200
    assert packed.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert packed.json() == plain.json()
    assert packed.num_bytes_downloaded * 5 < plain.num_bytes_downloaded


def test_an_api_reply_with_an_image_is_compressed_and_its_picture_intact(client):
    job = {"prompt": "a red star", "steps": 2, "width": 64, "height": 64, "seed": 3}
    with client.stream("POST", "/sdapi/v1/txt2img", json=job, headers=GZIP) as r:
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        body = json.loads(gzip.decompress(b"".join(r.iter_raw())))
    picture = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    assert picture.size == (64, 64)


def test_a_small_reply_stays_as_it_is(client):
    r = client.get("/internal/ping", headers=GZIP)
    assert r.status_code == 200 and "content-encoding" not in r.headers
