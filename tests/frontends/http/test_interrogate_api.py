"""POST /sdapi/v1/interrogate (A1111's {image, model} -> {caption}): "clip" gives the BLIP caption,
"deepdanbooru" the tags, from the user's model files; an unknown model is A1111's 404, a missing model
file a 400 naming where it goes, a bad picture a 400."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.fixtures.tiny_captioners import write_blip, write_deepdanbooru


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("interrogate-api") / "data", "--nowebui", start=False)


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def post(client, status: int = 200, **body) -> dict:
    response = client.post("/sdapi/v1/interrogate", json=body)
    assert response.status_code == status, response.text
    return response.json()


def test_missing_models_are_400s_naming_where_they_go(client, app):
    picture = b64(Image.new("RGB", (32, 32)))
    error = post(client, 400, image=picture, model="deepdanbooru")
    assert str(app.paths.models_dir / "torch_deepdanbooru") in error["detail"]
    assert "model-resnet_custom_v3.pt" in error["detail"]
    error = post(client, 400, image=picture)  # "clip" by default, as A1111
    assert str(app.paths.models_dir / "BLIP") in error["detail"]


def test_captions_and_tags_come_back(client, app):
    write_deepdanbooru(
        app.paths.models_dir / "torch_deepdanbooru" / "model-resnet_custom_v3.pt",
        ["1girl", "smile", "rating:safe"],
        logits=[2.0, -2.0, 4.0],
    )
    write_blip(app.paths.models_dir / "BLIP" / "base", word="grass")
    app.options.set("interrogate_clip_min_length", 1)
    app.options.set("interrogate_clip_max_length", 4)
    picture = b64(Image.new("RGB", (40, 30), "green"))
    assert post(client, image=picture, model="deepdanbooru") == {"caption": "1girl"}
    assert post(client, image=picture, model="clip") == {"caption": "grass grass grass"}


def test_unknown_models_and_bad_pictures(client):
    picture = b64(Image.new("RGB", (8, 8)))
    assert "Model not found" in post(client, 404, image=picture, model="wd14-vit")["detail"]
    assert "image" in post(client, 400, model="deepdanbooru")["detail"]
    assert "image" in post(client, 400, image="not base64!", model="deepdanbooru")["detail"]
