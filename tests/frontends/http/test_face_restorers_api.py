"""GET /sdapi/v1/face-restorers as A1111 ([{name, cmd_dir}]), the `restore_faces` request field, and
the face restoration settings over the API."""

from __future__ import annotations

import json

import pytest

from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.tiny_faces import install_face_files

SMALL = {"prompt": "a face", "steps": 2, "width": 64, "height": 64, "seed": 7, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")


def test_nothing_installed_lists_nothing(client):
    r = client.get("/sdapi/v1/face-restorers")
    assert r.status_code == 200 and r.json() == []


def test_restore_faces_without_a_restorer_warns_and_returns_the_image_as_generated(client):
    plain = post_txt2img(client, SMALL)
    asked = post_txt2img(client, {**SMALL, "restore_faces": True})
    info = json.loads(asked["info"])
    assert any("codeformer-v0.1.0.pth" in w and "models/Codeformer" in w for w in info["warnings"])
    assert (decode_pixels(asked["images"][0]) == decode_pixels(plain["images"][0])).all()
    assert "Face restoration" not in info["infotexts"][0] and asked["parameters"]["restore_faces"] is True


def test_the_settings_are_in_options_and_checked(client):
    options = client.get("/sdapi/v1/options").json()
    assert options["face_restoration"] is False and options["face_restoration_model"] == "CodeFormer"
    assert options["code_former_weight"] == 0.5 and options["face_restoration_unload"] is False
    assert client.post("/sdapi/v1/options", json={"code_former_weight": 2}).status_code == 400
    assert client.post("/sdapi/v1/options", json={"face_restoration_model": "Nope"}).status_code == 400


def test_installed_restorers_are_listed_with_their_folders(app, client, face_files):
    install_face_files(app.paths.data_dir, face_files)
    listed = client.get("/sdapi/v1/face-restorers").json()
    assert listed == [
        {"name": "CodeFormer", "cmd_dir": str(app.paths.codeformer_dir)},
        {"name": "GFPGAN", "cmd_dir": str(app.paths.gfpgan_dir)},
    ]
    assert app.options.data_labels["face_restoration_model"].resolved_component_args() == {
        "choices": ["CodeFormer", "GFPGAN"]
    }
