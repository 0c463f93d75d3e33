"""Face restoration engine: RetinaFace loads facexlib's keys, its anchors/decoding/NMS follow the SSD
math, the FFHQ alignment puts known landmarks where the template says, and paste-back changes only the
face's square."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.faces.align import FACE_SIZE, FFHQ_TEMPLATE, crop_face, face_transform, paste_face
from modules.sumi.engine.faces.detect import detect_faces, select_faces
from modules.sumi.engine.faces.restore import restore_faces
from modules.sumi.engine.faces.retinaface import (
    RetinaFace,
    decode_boxes,
    decode_landmarks,
    nms,
    priors,
)
from modules.sumi.engine.upscalers.spandrel_loader import read_weights
from tests.fixtures.tiny_faces import bright_spot_detector, write_tiny_retinaface


def grey_with_square(size: int = 512, box: tuple[int, int, int, int] = (300, 200, 360, 260)) -> np.ndarray:
    image = np.full((size, size, 3), 128, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


@pytest.mark.parametrize("prefix", ["", "module."])
def test_retinaface_loads_facexlib_keys_and_answers_for_every_anchor(tmp_path, prefix):
    path = write_tiny_retinaface(tmp_path / "detection_Resnet50_Final.pth", prefix=prefix)
    model = RetinaFace.from_state_dict(read_weights(path))
    assert "body.layer4.0.downsample.0.weight" in model.state_dict()
    assert {
        "ClassHead.2.conv1x1.weight",
        "LandmarkHead.0.conv1x1.bias",
        "ssh3.conv7x7_3.1.running_var",
    } <= set(model.state_dict())
    with torch.no_grad():
        loc, scores, landmarks = model(torch.zeros(1, 3, 96, 160))
    n = len(priors(96, 160))
    assert n == 2 * (12 * 20 + 6 * 10 + 3 * 5)
    assert loc.shape == (1, n, 4) and scores.shape == (1, n) and landmarks.shape == (1, n, 10)
    assert ((scores >= 0) & (scores <= 1)).all()


def test_a_file_of_another_layout_is_refused_by_name():
    with pytest.raises(ModelLoadError, match="body.conv1.weight"):
        RetinaFace.from_state_dict({"conv.weight": torch.zeros(1)}, "other.pth")
    state = RetinaFace(4, (1, 1, 1, 1), 16).state_dict()
    del state["BboxHead.1.conv1x1.weight"]
    with pytest.raises(ModelLoadError, match="BboxHead.1.conv1x1.weight"):
        RetinaFace.from_state_dict(state, "broken.pth")


def test_priors_are_centred_in_their_cells_with_two_sizes_per_level():
    anchors = priors(64, 32)
    # level 1 (stride 8): 8 rows x 4 columns x 2 sizes; first cell centre (4, 4) px, sizes 16 and 32
    assert torch.allclose(anchors[0], torch.tensor([4 / 32, 4 / 64, 16 / 32, 16 / 64]))
    assert torch.allclose(anchors[1], torch.tensor([4 / 32, 4 / 64, 32 / 32, 32 / 64]))
    assert torch.allclose(anchors[2, :2], torch.tensor([12 / 32, 4 / 64]))  # next column
    assert torch.allclose(anchors[8, :2], torch.tensor([4 / 32, 12 / 64]))  # next row
    level3 = anchors[-2:]  # stride 32: last cell centre (16, 48), sizes 256 and 512
    assert torch.allclose(level3[:, 0], torch.tensor([16 / 32] * 2)) and torch.allclose(
        level3[:, 1], torch.tensor([48 / 64] * 2)
    )
    assert torch.allclose(level3[:, 2], torch.tensor([256 / 32, 512 / 32]))


def test_decoding_undoes_the_ssd_encoding():
    anchors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(decode_boxes(torch.zeros(1, 4), anchors), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    # centre moves by offset * 0.1 * size; size scales by exp(offset * 0.2)
    loc = torch.tensor([[1.0, -2.0, 5 * math.log(2.0), 0.0]])
    box = decode_boxes(loc, anchors)[0]
    assert torch.allclose(box, torch.tensor([0.52 - 0.2, 0.42 - 0.2, 0.52 + 0.2, 0.42 + 0.2]), atol=1e-6)
    points = decode_landmarks(torch.arange(10, dtype=torch.float32)[None], anchors)[0].view(5, 2)
    expected = torch.tensor([[0.5 + 0.02 * (2 * i), 0.5 + 0.04 * (2 * i + 1)] for i in range(5)])
    assert torch.allclose(points, expected, atol=1e-6)


def test_nms_keeps_the_best_of_overlapping_boxes_and_separate_ones():
    boxes = torch.tensor([[0, 0, 99, 99], [5, 5, 104, 104], [200, 200, 299, 299], [0, 0, 99, 40.0]])
    scores = torch.tensor([0.9, 0.95, 0.8, 0.85])
    # box 0 overlaps box 1 by (95*95)/(2*100*100 - 95*95) = 0.82; box 3 overlaps box 1 by 0.36
    assert nms(boxes, scores, 0.4).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.3).tolist() == [1, 2]


def test_select_faces_drops_unsure_and_close_eyed_detections():
    boxes = torch.tensor([[0, 0, 50, 50], [100, 100, 150, 150], [300, 0, 350, 50.0]])
    scores = torch.tensor([0.9, 0.5, 0.95])
    eyes_apart = [10, 10, 30, 10, 20, 20, 12, 30, 28, 30]
    eyes_close = [10, 10, 12, 10, 20, 20, 12, 30, 28, 30]
    points = torch.tensor([eyes_apart, eyes_apart, eyes_close], dtype=torch.float32)
    faces = select_faces(boxes, scores, points)
    assert len(faces) == 1 and faces[0].box == (0, 0, 50, 50) and faces[0].landmarks.shape == (5, 2)


def test_the_detector_finds_the_bright_spot_and_nothing_on_a_plain_picture():
    detector = bright_spot_detector()
    faces = detect_faces(detector, grey_with_square())
    assert len(faces) == 1
    centre = faces[0].landmarks.mean(axis=0)
    assert abs(centre[0] - 330) < 40 and abs(centre[1] - 230) < 40
    assert detect_faces(detector, np.full((512, 512, 3), 128, np.uint8)) == []


def similarity(scale: float, angle_deg: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array(
        [[scale * np.cos(a), -scale * np.sin(a), shift[0]], [scale * np.sin(a), scale * np.cos(a), shift[1]]]
    )


def test_alignment_maps_the_landmarks_onto_the_ffhq_template_and_back():
    # a face placed in the picture by a known similarity: its landmarks are the template moved by it
    place = similarity(0.3, 20, (150, 90))
    landmarks = FFHQ_TEMPLATE @ place[:, :2].T + place[:, 2]
    matrix = face_transform(landmarks)
    assert np.allclose(np.vstack([matrix, [0, 0, 1]]) @ np.vstack([place, [0, 0, 1]]), np.eye(3), atol=1e-3)
    image = np.full((400, 400, 3), 90, np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 4, (255, 255, 255), -1)
    crop = crop_face(image, matrix)
    assert crop.shape == (FACE_SIZE, FACE_SIZE, 3)
    for x, y in FFHQ_TEMPLATE:  # each painted landmark is where the template puts it
        assert crop[round(y), round(x)].min() > 200
    assert crop[40, 40].tolist() == [90, 90, 90]


def test_paste_back_puts_the_face_in_place_and_leaves_the_rest_exactly():
    place = similarity(0.3, -15, (160, 120))
    landmarks = FFHQ_TEMPLATE @ place[:, :2].T + place[:, 2]
    matrix = face_transform(landmarks)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (400, 500, 3)).astype(np.float32)
    face = np.zeros((FACE_SIZE, FACE_SIZE, 3), np.float32)
    face[:, :] = (0, 0, 255)
    out, mask = paste_face(image, face, matrix)
    centre = landmarks.mean(axis=0)
    assert np.allclose(out[round(centre[1]), round(centre[0])], (0, 0, 255), atol=1)
    square = cv2.warpAffine(
        np.ones((FACE_SIZE, FACE_SIZE), np.float32), cv2.invertAffineTransform(matrix), (500, 400)
    )
    outside = square == 0
    assert outside.sum() > 100_000 and (out[outside] == image[outside]).all() and (mask[outside] == 0).all()
    edge = mask[(square > 0) & (mask > 0)]
    assert edge.min() < 0.5 < edge.max()  # a soft edge, not a hard cut


def invert(x: torch.Tensor) -> torch.Tensor:
    return -x


def test_restore_changes_only_the_face_and_nothing_without_one():
    detector = bright_spot_detector()
    image = cv2.cvtColor(grey_with_square(256, (150, 100, 180, 130)), cv2.COLOR_BGR2RGB)
    result = restore_faces(image, detector, invert)
    assert len(result.faces) == 1 and result.image.shape == image.shape
    changed = np.abs(result.image.astype(int) - image).max(axis=2) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)
    centre = result.faces[0].landmarks.mean(axis=0)
    assert abs(xs.mean() - centre[0]) < 30 and abs(ys.mean() - centre[1]) < 40
    assert changed.mean() < 0.5 and not changed[:20].any() and not changed[:, :20].any()
    plain = np.full((256, 256, 3), 128, np.uint8)
    again = restore_faces(plain, detector, invert)
    assert again.faces == [] and np.array_equal(again.image, plain)
