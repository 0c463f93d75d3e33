"""`POST /controlnet/render_openpose_json` (sd-webui-controlnet's route; the openpose editor and API
clients send edited poses to it): OpenPose JSON drawn as the openpose preprocessors draw, bad JSON a
clear 400/422. The round trip from `/controlnet/detect` is in test_controlnet_api.py."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.controlnet.annotators.openpose import COLOURS


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui")


def _decode(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


def _body(points: dict[int, tuple[float, float]], confidence: float = 1.0) -> list[float]:
    flat = [0.0] * 54
    for index, (x, y) in points.items():
        flat[3 * index : 3 * index + 3] = [x, y, confidence]
    return flat


def _render(client, *poses: dict):
    return client.post("/controlnet/render_openpose_json", json=list(poses))


def test_no_pose_data_is_answered_as_the_extension_does(client):
    r = _render(client)
    assert r.status_code == 200 and r.json() == {"info": "No pose data detected."}


def test_a_pose_in_pixels_is_drawn_with_its_limb_and_points_and_a_low_confidence_point_is_missing(client):
    nose, neck, eye = (60.0, 30.0), (60.0, 70.0), (50.0, 20.0)
    person = {"pose_keypoints_2d": _body({0: nose, 1: neck})}
    person["pose_keypoints_2d"][3 * 14 : 3 * 15] = [*eye, 0.5]  # the right eye, not sure enough to draw
    r = _render(client, {"people": [person], "canvas_width": 120, "canvas_height": 100})
    assert r.status_code == 200, r.text
    (text,) = r.json()["images"]
    drawing = _decode(text)
    assert drawing.shape == (100, 120, 3)
    assert tuple(drawing[30, 60]) == COLOURS[0] and tuple(drawing[70, 60]) == COLOURS[1]  # nose, neck dots
    assert drawing[50, 60].any()  # the neck-nose limb between them
    assert not drawing[20, 50].any()  # the eye with confidence 0.5 is left out
    assert not drawing[90, 10].any()


def test_fractions_scale_to_the_canvas_and_hands_and_face_are_drawn(client):
    hand = [v for i in range(21) for v in (0.2 + 0.01 * i, 0.8, 1.0)]
    face = [0.5, 0.1, 1.0, 0.55, 0.1, 1.0]
    person = {
        "pose_keypoints_2d": _body({0: (0.5, 0.25), 1: (0.5, 0.5)}),
        "hand_left_keypoints_2d": hand,
        "face_keypoints_2d": face,
    }
    drawing = _decode(
        _render(client, {"people": [person], "canvas_width": 200, "canvas_height": 100}).json()["images"][0]
    )
    assert tuple(drawing[25, 100]) == COLOURS[0]  # (0.5, 0.25) of 200x100
    assert tuple(drawing[80, 40]) == (0, 0, 255)  # the hand's first point, a blue dot
    assert tuple(drawing[10, 100]) == (255, 255, 255)  # a face point, white


def test_several_poses_give_one_picture_each_and_animals_draw_when_there_are_no_people(client):
    people = {
        "people": [{"pose_keypoints_2d": _body({0: (10.0, 10.0)})}],
        "canvas_width": 32,
        "canvas_height": 32,
    }
    animal = [v for i in range(17) for v in (5.0 + 3 * i, 20.0, 1.0)]
    animals = {"people": [], "animals": [animal], "canvas_width": 64, "canvas_height": 40}
    r = _render(client, people, animals)
    assert r.status_code == 200, r.text
    first, second = (_decode(t) for t in r.json()["images"])
    assert first.shape == (32, 32, 3) and second.shape == (40, 64, 3)
    assert second[20].any() and not second[5].any()  # the animal's limbs along y = 20


@pytest.mark.parametrize(
    ("pose", "message"),
    [
        ({"pose_keypoints_2d": [1.0, 2.0]}, "triples"),
        ({"pose_keypoints_2d": [1.0, 2.0, 1.0] * 5}, "at least 18 keypoints"),
        (
            {"pose_keypoints_2d": _body({}), "hand_left_keypoints_2d": [1.0, 1.0, 1.0] * 4},
            "at least 21 keypoints",
        ),
    ],
)
def test_malformed_keypoints_are_refused_with_what_was_expected(client, pose, message):
    r = _render(client, {"people": [pose], "canvas_width": 64, "canvas_height": 64})
    assert r.status_code == 400 and message in r.text, r.text
    assert "pose_data[0].people[0]" in r.text


def test_hostile_canvases_and_numbers_are_refused_or_kept_in_range(client):
    huge = _render(client, {"people": [], "canvas_width": 100_000, "canvas_height": 100_000})
    assert huge.status_code == 400 and "8192" in huge.text
    many = _render(client, *[{"people": [], "canvas_width": 8192, "canvas_height": 8192}] * 2)
    assert many.status_code == 400
    nan = client.post(
        "/controlnet/render_openpose_json",
        content=b'[{"people": [{"pose_keypoints_2d": [NaN, 1, 1]}], "canvas_width": 8, "canvas_height": 8}]',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422
    far = _render(
        client,
        {
            "people": [{"pose_keypoints_2d": _body({0: (1e300, -1e300), 1: (4.0, 4.0)})}],
            "canvas_width": 16,
            "canvas_height": 16,
        },
    )
    assert far.status_code == 200, far.text  # a point far off the canvas: its limb runs off the edge
    assert _render(client, {"canvas_width": 8}).status_code == 422  # no people, no canvas height
