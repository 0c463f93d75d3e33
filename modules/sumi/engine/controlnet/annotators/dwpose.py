"""DW Pose and animal pose: a YOLOX person/animal detector and an RTMPose keypoint network, both ONNX
files run by OpenCV's DNN module on the CPU (as sd-webui-controlnet runs them; no extra package).

Detection (`yolox_l.onnx`): the picture is scaled to fit 640x640 (grey 114 padding right and below),
the raw grid outputs are decoded at strides 8/16/32 into boxes whose score is objectness x class
probability, boxes over 0.1 go through non-maximum suppression (IoU 0.45) class by class, and those over
0.3 of the wanted classes remain (people: class 0; animals: COCO classes 14-23).

Keypoints (`dw-ll_ucoco_384.onnx`, 133 whole-body points at 288x384; the AP10k animal model, 17 points at
256x256): each box, grown by 1.25 and to the model's aspect ratio, is warped to the input size and
normalised with ImageNet statistics; the two SimCC outputs give each keypoint's x and y as their argmax
/ 2 and its score as the smaller of the two maxima.

People: a neck is added between the shoulders and the COCO-WholeBody order is mapped to OpenPose's 18
body points, then 68 face points (plus the eyes), 21 points per hand; points scored under 0.3 are left
out. Keypoints stay in pixels, as the extension keeps them (its JSON too).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import torch

from modules.sumi.engine.controlnet.annotators.openpose import Person, Point
from modules.sumi.engine.errors import ModelLoadError

DETECT_SIZE = 640
STRIDES = (8, 16, 32)
PAD_GREY = 114
NMS_IOU, CANDIDATE_SCORE, BOX_SCORE = 0.45, 0.1, 0.3
PERSON_CLASSES = (0,)
ANIMAL_CLASSES = tuple(range(14, 24))  # bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe
WHOLEBODY_INPUT = (288, 384)  # (width, height)
ANIMAL_INPUT = (256, 256)
BOX_PADDING = 1.25
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])
SIMCC_SPLIT = 2.0
KEYPOINT_SCORE = 0.3
# COCO-WholeBody (with the neck inserted at 17) -> OpenPose's body order
_OPENPOSE_SLOTS = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)
_WHOLEBODY_SOURCES = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)


class OnnxNetwork(torch.nn.Module):
    """An ONNX file loaded into OpenCV's DNN module (kept in the annotator cache like the torch
    networks; it has no parameters, so moving it is a no-op and it runs on the CPU)."""

    def __init__(self, net: cv2.dnn.Net, name: str) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self._lock = threading.Lock()  # one forward at a time: an OpenCV net keeps its input

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            self.net.setInput(np.ascontiguousarray(blob, dtype=np.float32))
            return list(self.net.forward(self.net.getUnconnectedOutLayersNames()))


def load_onnx(path: Path, allow_unsafe_pickle: bool = False) -> OnnxNetwork:
    """An ONNX network from its file (no pickle involved); a file OpenCV cannot read is a ModelLoadError."""
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        raise ModelLoadError(f"{path.name} is not an ONNX network OpenCV can run ({exc.msg or exc})") from exc
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return OnnxNetwork(net, path.name)


# --- detection -----------------------------------------------------------------------------------------


def _letterboxed(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The picture scaled to fit the detector's square (top left, grey padding), as 1x3xSxS float32."""
    height, width = rgb.shape[:2]
    ratio = min(DETECT_SIZE / height, DETECT_SIZE / width)
    size = (int(width * ratio), int(height * ratio))
    canvas = np.full((DETECT_SIZE, DETECT_SIZE, 3), PAD_GREY, np.uint8)
    canvas[: size[1], : size[0]] = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio


def _decoded(raw: np.ndarray) -> np.ndarray:
    """The detector's grid outputs [cells, 5 + classes] with boxes as centre and size in input pixels."""
    cells, steps = [], []
    for stride in STRIDES:
        side = DETECT_SIZE // stride
        xs, ys = np.meshgrid(np.arange(side), np.arange(side))
        cells.append(np.stack((xs, ys), 2).reshape(-1, 2))
        steps.append(np.full((side * side, 1), stride))
    grid, stride = np.concatenate(cells), np.concatenate(steps)
    out = raw.copy()
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(out[:, 2:4]) * stride
    return out


def non_max_suppression(boxes: np.ndarray, order: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression of boxes [n, >=4] (x1, y1, x2, y2 first), taken in `order` (best
    first); areas in whole pixels, +1 per side, as the DWPose and InsightFace code count them."""
    x1, y1, x2, y2 = boxes[:, :4].T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        overlap = width * height
        order = rest[overlap / (areas[best] + areas[rest] - overlap) <= iou]
    return keep


def detect_boxes(detector: OnnxNetwork, rgb: np.ndarray, classes: tuple[int, ...]) -> np.ndarray | None:
    """Boxes (x1, y1, x2, y2 in pixels) of the wanted classes scored over 0.3, class by class, best first;
    None when the detector saw nothing of any class over 0.1."""
    blob, ratio = _letterboxed(rgb)
    predictions = _decoded(detector.run(blob)[0][0])
    centre, size = predictions[:, :2], predictions[:, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
    scores = predictions[:, 4:5] * predictions[:, 5:]
    if not (scores > CANDIDATE_SCORE).any():
        return None
    found = []
    for cls in classes:
        candidates = np.flatnonzero(scores[:, cls] > CANDIDATE_SCORE)
        if candidates.size == 0:
            continue
        kept = candidates[
            non_max_suppression(boxes[candidates], scores[candidates, cls].argsort()[::-1], NMS_IOU)
        ]
        found.extend(boxes[i] for i in kept if scores[i, cls] > BOX_SCORE)
    return np.array(found).reshape(-1, 4)


# --- keypoints -----------------------------------------------------------------------------------------


def _box_frame(box: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(centre, size) of the region read for a box: grown by 1.25, then to the model's aspect ratio."""
    x1, y1, x2, y2 = box
    centre = np.array([x1 + x2, y1 + y2]) * 0.5
    width, height = (x2 - x1) * BOX_PADDING, (y2 - y1) * BOX_PADDING
    aspect = input_size[0] / input_size[1]
    size = (
        np.array([width, width / aspect]) if width > height * aspect else np.array([height * aspect, height])
    )
    return centre, size


def _warp(rgb: np.ndarray, centre: np.ndarray, size: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The region (centre, size) warped to the model's input size (upright, uniformly scaled)."""
    out_w, out_h = input_size
    middle = np.array([out_w * 0.5, out_h * 0.5])
    source = _three_points(centre, np.array([0.0, size[0] * -0.5]))
    target = _three_points(middle, np.array([0.0, out_w * -0.5]))
    matrix = cv2.getAffineTransform(source, target)
    return cv2.warpAffine(rgb, matrix, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR)


def _three_points(centre: np.ndarray, up: np.ndarray) -> np.ndarray:
    """centre, centre + up, and that point plus `up` turned a quarter (the affine's three pairs), each
    rounded to float32 before the next is derived from it, as the extension computes them."""
    points = np.zeros((3, 2), dtype=np.float32)
    points[0] = centre
    points[1] = centre + up
    direction = points[0] - points[1]
    points[2] = points[1] + np.array([-direction[1], direction[0]], dtype=np.float32)
    return points


def read_keypoints(
    network: OnnxNetwork, rgb: np.ndarray, boxes: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints [boxes, K, 2] in pixels and their scores [boxes, K] (the whole picture when no box)."""
    if len(boxes) == 0:
        boxes = np.array([[0, 0, rgb.shape[1], rgb.shape[0]]])
    points, scores = [], []
    for box in boxes:
        centre, size = _box_frame(np.asarray(box, dtype=np.float64), input_size)
        crop = (_warp(rgb, centre, size, input_size) - MEAN) / STD
        simcc_x, simcc_y = network.run(crop.transpose(2, 0, 1)[None])[:2]
        located, score = _simcc_peaks(simcc_x[0], simcc_y[0])
        points.append(located / np.array(input_size) * size + centre - size / 2)
        scores.append(score)
    return np.array(points), np.array(scores)


def _simcc_peaks(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint: (x, y) in input pixels from the SimCC argmaxes, and min(max x, max y) as its score
    (-1 / 2 where that score is not positive)."""
    located = np.stack([simcc_x.argmax(1), simcc_y.argmax(1)], axis=-1).astype(np.float32)
    score = np.minimum(simcc_x.max(1), simcc_y.max(1))
    located[score <= 0.0] = -1
    return located / SIMCC_SPLIT, score


# --- people and animals --------------------------------------------------------------------------------


def read_wholebody(detector: OnnxNetwork, pose: OnnxNetwork, rgb: np.ndarray) -> list[Person]:
    """Everyone in an RGB picture, as OpenPose people with whole-body keypoints in pixels."""
    boxes = detect_boxes(detector, rgb, PERSON_CLASSES)
    if boxes is None:
        return []
    points, scores = read_keypoints(pose, rgb, boxes, WHOLEBODY_INPUT)
    return [_person(info) for info in _openpose_order(np.concatenate([points, scores[..., None]], axis=-1))]


def _openpose_order(info: np.ndarray) -> np.ndarray:
    """[people, 133, 3] COCO-WholeBody -> [people, 134, 3] with a neck and OpenPose's body order."""
    neck = info[:, [5, 6]].mean(axis=1)
    neck[:, 2] = np.logical_and(info[:, 5, 2] > KEYPOINT_SCORE, info[:, 6, 2] > KEYPOINT_SCORE).astype(int)
    ordered = np.insert(info, 17, neck, axis=1)
    ordered[:, _OPENPOSE_SLOTS] = ordered[:, _WHOLEBODY_SOURCES]
    return ordered


def _kept(part: np.ndarray) -> list[Point | None] | None:
    points: list[Point | None] = [(x, y) if score >= KEYPOINT_SCORE else None for x, y, score in part]
    return None if all(p is None for p in points) else points


def _person(info: np.ndarray) -> Person:
    body = _kept(info[:18]) or [None] * 18
    face = _kept(info[24:92])
    if face is not None:
        face = [*face, body[14], body[15]]  # OpenPose's face has the eyes as points 68 and 69
    return Person(body, _kept(info[92:113]), _kept(info[113:134]), face)


def read_animals(
    detector: OnnxNetwork, pose: OnnxNetwork, rgb: np.ndarray
) -> list[list[tuple[float, float, float]]]:
    """Every animal's 17 AP10k keypoints (x, y in pixels, score clipped to 0..1)."""
    boxes = detect_boxes(detector, rgb, ANIMAL_CLASSES)
    if boxes is None or len(boxes) == 0:
        return []
    points, scores = read_keypoints(pose, rgb, boxes, ANIMAL_INPUT)
    clipped = np.clip(scores, 0.0, 1.0)
    return [
        [(float(x), float(y), float(s)) for (x, y), s in zip(animal, score, strict=True)]
        for animal, score in zip(points, clipped, strict=True)
    ]


# AP10k limbs (1-based keypoints) and their colours, as the extension draws animals.
ANIMAL_LIMBS = (
    (1, 2), (2, 3), (1, 3), (3, 4), (4, 9), (9, 10), (10, 11), (4, 6), (6, 7), (7, 8), (4, 5), (5, 15),
    (15, 16), (16, 17), (5, 12), (12, 13), (13, 14),
)  # fmt: skip
ANIMAL_COLOURS = (
    (255, 255, 255), (100, 255, 100), (150, 255, 255), (100, 50, 255), (50, 150, 200), (0, 255, 255),
    (0, 150, 0), (0, 0, 255), (0, 0, 150), (255, 50, 255), (255, 0, 255), (255, 0, 0), (150, 0, 0),
    (255, 255, 100), (0, 150, 0), (255, 255, 0), (150, 150, 150),
)  # fmt: skip


def draw_animals(animals: list[list[tuple[float, float, float]]], height: int, width: int) -> np.ndarray:
    """Each animal's limbs as 5-pixel lines on black (HxWx3 uint8)."""
    canvas = np.zeros((height, width, 3), np.uint8)
    for animal in animals:
        for (a, b), colour in zip(ANIMAL_LIMBS, ANIMAL_COLOURS, strict=True):
            p, q = animal[a - 1], animal[b - 1]
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), colour, 5)
    return canvas
