"""mediapipe_face draws the face mesh MediaPipe finds as sd-webui-controlnet does (controlnet-aux holds the
extension's annotator code; both run the same mediapipe), and without mediapipe says what to install.

The picture is a real face: scikit-image's bundled astronaut photograph (no download)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.controlnet.annotators.mediapipe_face import (
    FaceLandmarks,
    face_mesh_map,
    find_faces,
    large_enough,
)
from modules.sumi.engine.controlnet.image_fit import PreprocessorError, resize_with_pad
from modules.sumi.engine.controlnet.preprocessors import Slider, get_preprocessor

FACE_MESH = "mediapipe.python.solutions.face_mesh"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage = pytest.importorskip("skimage")
    return np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB"))


@pytest.fixture(scope="module")
def reference():
    """The extension's generate_annotation (controlnet-aux's copy of it)."""
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe is not installed")
    find_faces(np.zeros((64, 64, 3), np.uint8), 1, 0.5)  # imports it as Sumi does (beside protobuf 5/6)
    from tests.engine.aux_reference import aux_module

    return aux_module("mediapipe_face.mediapipe_face_common").generate_annotation


@pytest.mark.parametrize("resolution", [512, 384])
def test_map_equals_the_extensions_on_a_real_face(astronaut, reference, resolution):
    padded = resize_with_pad(astronaut, resolution)
    expected = padded.unpad(reference(padded.image, 1, 0.5))

    got = get_preprocessor("mediapipe_face").run(astronaut, resolution, 1, 0.5)

    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
    coloured = got.any(axis=2)
    assert 0.005 < coloured.mean() < 0.2  # a face drawn, not an empty or filled map
    assert {(10, 200, 10), (10, 180, 10)} <= {tuple(int(c) for c in px) for px in got[coloured]}  # oval, lips


def test_max_faces_finds_each_face_up_to_the_limit(astronaut, reference):
    head = astronaut[:256, 96:352]
    pair = np.concatenate([head, head[:, ::-1]], axis=1)  # two faces, 256 x 512
    padded = resize_with_pad(pair, 256)

    one, two = (find_faces(padded.image, n, 0.5) for n in (1, 2))

    assert (len(one), len(two)) == (1, 2)
    for max_faces in (1, 2):
        expected = padded.unpad(reference(padded.image, max_faces, 0.5))
        assert np.array_equal(get_preprocessor("mediapipe_face").run(pair, 256, max_faces, 0.5), expected)


def test_no_face_gives_a_black_map(reference):
    sky = np.full((256, 320, 3), (90, 140, 220), np.uint8)

    got = face_mesh_map(sky, 1, 0.5)

    assert got.shape == sky.shape and not got.any()


def test_faces_under_64_pixels_are_dropped():
    square = np.array([[0.1, 0.1], [0.3, 0.3]])
    face = FaceLandmarks(square, np.ones(2, bool), np.ones(2, bool))

    assert large_enough(face, 330, 330)  # 66 x 66 pixels
    assert not large_enough(face, 310, 640)  # 62 pixels wide


def test_sliders_are_the_extensions():
    found = get_preprocessor("mediapipe_face")

    assert found.threshold_a == Slider("Max Faces", 1, 10, 1, 1)
    assert found.threshold_b == Slider("Min Face Confidence", 0.01, 1.0, 0.5, 0.01)
    assert not found.model_free  # the extension's flag: it runs a network


def test_without_mediapipe_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, FACE_MESH, None)

    with pytest.raises(
        PreprocessorError, match=r"needs the mediapipe package.*pip install --no-deps mediapipe"
    ):
        get_preprocessor("mediapipe_face").run(np.zeros((64, 64, 3), np.uint8))
