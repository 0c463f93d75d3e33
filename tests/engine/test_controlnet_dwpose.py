"""DW Pose and animal pose (ONNX through OpenCV): people boxes, warped crops and network outputs equal
rtmlib's YOLOX and RTMPose on the same files (rtmlib descends from the same DWPose code the extension
ships); keypoint scores follow the extension's rule (the smaller of the two SimCC maxima, where rtmlib
takes their mean); the whole-body points land in OpenPose's order with a neck, in pixels, as the
extension's JSON keeps them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rtmlib import YOLOX, RTMPose

from modules.sumi.engine.controlnet.annotators import dwpose
from modules.sumi.engine.controlnet.image_fit import PreprocessorError
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from tests.fixtures.tiny_dwpose import (
    ANIMAL,
    DETECTOR,
    WHOLEBODY,
    bright_figures,
    write_animal_pose,
    write_dwpose,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RESOLUTION = 256  # the picture's short side: the preprocessor sees it unscaled


@pytest.fixture(scope="module")
def people_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dwpose")
    write_dwpose(folder)
    return folder


@pytest.fixture(scope="module")
def animal_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("animalpose")
    write_animal_pose(folder)
    return folder


def _reference_boxes(path: Path, picture: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    detector = YOLOX(
        str(path), (640, 640), det_mode="multiclass", nms_thr=0.45, score_thr=0.3, backend="opencv"
    )
    boxes, kinds = detector(picture.copy())
    return np.asarray(boxes)[np.isin(kinds, classes)].reshape(-1, 4)


def _reference_keypoints(path: Path, picture: np.ndarray, boxes: np.ndarray, size: tuple[int, int]):
    """rtmlib's crops and network outputs; the extension's decoding: keypoints where both axes peak
    above 0, score = min(max x, max y)."""
    pose = RTMPose(str(path), size, backend="opencv")
    points, scores = [], []
    for box in boxes.astype(np.float64):  # the extension's boxes are float64 (its NMS output)
        crop, centre, scale = pose.preprocess(picture.copy(), box)
        simcc_x, simcc_y = pose.inference(crop)
        located, _ = pose.postprocess((simcc_x, simcc_y), centre, scale)
        points.append(located[0])
        scores.append(np.minimum(simcc_x[0].max(1), simcc_y[0].max(1)))
    return np.array(points), np.array(scores)


def test_people_boxes_crops_and_keypoints_equal_rtmlib_on_the_same_files(people_dir):
    picture = bright_figures()
    files = people_dir / "openpose"
    detector, pose = dwpose.load_onnx(files / DETECTOR), dwpose.load_onnx(files / WHOLEBODY)
    boxes = dwpose.detect_boxes(detector, picture, dwpose.PERSON_CLASSES)
    assert boxes is not None and len(boxes) >= 2
    np.testing.assert_allclose(boxes, _reference_boxes(files / DETECTOR, picture, (0,)), rtol=1e-6, atol=1e-4)
    points, scores = dwpose.read_keypoints(pose, picture, boxes, dwpose.WHOLEBODY_INPUT)
    expected_points, expected_scores = _reference_keypoints(files / WHOLEBODY, picture, boxes, (288, 384))
    assert points.shape == (len(boxes), 133, 2)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)
    placed = scores > 0
    assert placed.any() and not placed.all()
    np.testing.assert_allclose(points[placed], expected_points[placed], rtol=1e-5, atol=1e-3)
    assert np.isfinite(points).all()


def test_dw_openpose_full_maps_wholebody_points_to_openpose_people_in_pixels(people_dir):
    picture = bright_figures()
    files = people_dir / "openpose"
    boxes = _reference_boxes(files / DETECTOR, picture, (0,))
    points, scores = _reference_keypoints(files / WHOLEBODY, picture, boxes, (288, 384))
    found = get_preprocessor("dw_openpose_full").analyse(picture, RESOLUTION, annotator_dir=people_dir)
    pose = found.pose
    assert pose is not None and (pose["canvas_height"], pose["canvas_width"]) == picture.shape[:2]
    assert len(pose["people"]) == len(boxes) and pose["animals"] == []
    for person, xy, score in zip(pose["people"], points, scores, strict=True):
        body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
        # OpenPose slot <- COCO-WholeBody point: nose 0 <- 0, right shoulder 2 <- 6, left shoulder 5 <- 5,
        # right hip 8 <- 12, left ear 17 <- 3
        for slot, source in ((0, 0), (2, 6), (5, 5), (8, 12), (17, 3)):
            if score[source] >= 0.3:
                np.testing.assert_allclose(body[slot], [*xy[source], 1.0], atol=1e-3)
            else:
                assert body[slot].tolist() == [0.0, 0.0, 0.0]
        neck_seen = score[5] > 0.3 and score[6] > 0.3
        if neck_seen:
            np.testing.assert_allclose(body[1, :2], (xy[5] + xy[6]) / 2, atol=1e-3)
        else:
            assert body[1].tolist() == [0.0, 0.0, 0.0]
        face = np.array(person["face_keypoints_2d"]).reshape(70, 3)
        kept = score[23:91] >= 0.3
        np.testing.assert_allclose(face[:68][kept, :2], xy[23:91][kept], atol=1e-3)
        np.testing.assert_array_equal(face[68], body[14])  # the eyes close OpenPose's face
        hand = person["hand_left_keypoints_2d"]
        assert hand is None or len(hand) == 21 * 3
    assert np.abs(np.array(pose["people"][0]["pose_keypoints_2d"])).max() > 1  # pixels, not fractions
    drawn = found.map
    assert drawn.shape == picture.shape and drawn.any()
    nose = np.array(pose["people"][0]["pose_keypoints_2d"][:2])
    if (
        pose["people"][0]["pose_keypoints_2d"][2]
        and (nose >= 0).all()
        and (nose < picture.shape[1::-1]).all()
    ):
        assert drawn[int(nose[1]), int(nose[0])].any()  # a dot where the nose is


def test_animal_openpose_finds_animals_and_lists_their_points_under_animals(animal_dir):
    picture = bright_figures()
    files = animal_dir / "openpose"
    boxes = _reference_boxes(files / DETECTOR, picture, dwpose.ANIMAL_CLASSES)
    points, scores = _reference_keypoints(files / ANIMAL, picture, boxes, (256, 256))
    found = get_preprocessor("animal_openpose").analyse(picture, RESOLUTION, annotator_dir=animal_dir)
    pose = found.pose
    assert pose is not None and pose["people"] == [] and len(pose["animals"]) == len(boxes) >= 1
    for animal, xy, score in zip(pose["animals"], points, scores, strict=True):
        listed = np.array(animal).reshape(17, 3)
        np.testing.assert_allclose(listed[score > 0, :2], xy[score > 0], atol=1e-3)
        assert (listed[:, 2] == 1.0).all()  # every point listed, as the extension lists them
    assert found.map.shape == picture.shape and found.map.any()


def test_a_file_opencv_cannot_read_is_named(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    (folder / DETECTOR).write_bytes(b"not onnx")
    (folder / WHOLEBODY).write_bytes(b"not onnx")
    with pytest.raises(
        PreprocessorError, match=r"cannot use yolox_l.onnx: yolox_l.onnx is not an ONNX network"
    ):
        get_preprocessor("dw_openpose_full").run(bright_figures(), RESOLUTION, annotator_dir=tmp_path)
