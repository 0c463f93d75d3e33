"""Helpers that build a real App on a temporary data folder (with the tiny demo checkpoint)."""

from __future__ import annotations

from pathlib import Path

from modules import shared
from modules.sumi.app import App
from modules.sumi.services.settings.flags import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_app(data_dir: Path, *flags: str) -> App:
    args = build_parser().parse_args(["--data-dir", str(data_dir), *flags])
    app = App(args, REPO_ROOT)
    shared.set_app(app)
    app.startup()
    return app


def generate(client, body: dict, prompt: str) -> tuple[bytes, dict]:
    """POST a txt2img request through a TestClient; (pixels of the first image, parsed `info`)."""
    import base64
    import io
    import json

    from PIL import Image

    r = client.post("/sdapi/v1/txt2img", json={**body, "prompt": prompt})
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    return image.tobytes(), json.loads(r.json()["info"])


def post_txt2img(client, body: dict, status: int = 200) -> dict:
    """POST /sdapi/v1/txt2img and check the status; the parsed JSON body."""
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == status, response.text
    return response.json()


def decode_pixels(data: str):
    """A base64 image from an API response as an RGB uint8 array."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
