"""Face identity embeddings for IP-Adapter FaceID, from InsightFace's ONNX models (the `buffalo_l` pack
sd-webui-controlnet uses: `det_10g.onnx` finds faces, `w600k_r50.onnx` describes one), run with OpenCV's
DNN module as DW Pose is (the insightface package is not needed).

Detection (SCRFD): the BGR picture is scaled to fit 640x640 (black padding right and below), fed as RGB
(x - 127.5) / 128; at strides 8, 16 and 32 each cell has two anchors whose score, box distances and five
landmark offsets (all x stride) are decoded; faces scored 0.5 or more survive non-maximum suppression
(IoU 0.4). Recognition (ArcFace): the face is aligned by the similarity transform that best maps its five
landmarks onto ArcFace's 112x112 template (least squares, Umeyama), fed as RGB (x - 127.5) / 127.5; the
512-number embedding is scaled to length 1. Of several faces the largest box is used (the extension's rule).
"""

from __future__ import annotations

import cv2
import numpy as np

from modules.sumi.engine.controlnet.annotators.dwpose import OnnxNetwork, non_max_suppression
from modules.sumi.engine.errors import InvalidRequestError

DETECT_SIZE = 640
STRIDES = (8, 16, 32)
ANCHORS = 2
DETECT_MEAN, DETECT_STD = 127.5, 128.0
FACE_SCORE, FACE_IOU = 0.5, 0.4
FACE_SIZE = 112
RECOGNIZE_MEAN, RECOGNIZE_STD = 127.5, 127.5
# ArcFace's landmark template for 112x112 crops: eyes, nose tip, mouth corners
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def _letterboxed(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    """The picture scaled to fit the square (top left, black around) and the scale used."""
    height, width = bgr.shape[:2]
    if height / width > 1.0:
        new_height, new_width = DETECT_SIZE, int(DETECT_SIZE / (height / width))
    else:
        new_width, new_height = DETECT_SIZE, int(DETECT_SIZE * (height / width))
    canvas = np.zeros((DETECT_SIZE, DETECT_SIZE, 3), np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(bgr, (new_width, new_height))
    return canvas, new_height / height


def _anchor_centres(stride: int) -> np.ndarray:
    side = DETECT_SIZE // stride
    ys, xs = np.mgrid[:side, :side]
    centres = np.stack([xs, ys], axis=-1).astype(np.float32)
    centres = (centres * stride).reshape(-1, 2)
    return np.repeat(centres, ANCHORS, axis=0)


def detect_faces(detector: OnnxNetwork, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces in a BGR picture: boxes [n, 5] (x1, y1, x2, y2, score) best first and landmarks [n, 5, 2]."""
    canvas, scale = _letterboxed(bgr)
    blob = cv2.dnn.blobFromImage(
        canvas, 1.0 / DETECT_STD, (DETECT_SIZE, DETECT_SIZE), (DETECT_MEAN,) * 3, swapRB=True
    )
    outputs = detector.run(blob)
    if len(outputs) != 3 * len(STRIDES):
        raise InvalidRequestError(
            f"{detector.name} gives {len(outputs)} outputs; a face detector with landmarks (SCRFD) gives 9"
        )
    boxes, points = [], []
    for i, stride in enumerate(STRIDES):
        scores = outputs[i].reshape(-1)
        distances = outputs[i + 3].reshape(-1, 4) * stride
        offsets = outputs[i + 6].reshape(-1, 10) * stride
        centres = _anchor_centres(stride)
        kept = np.flatnonzero(scores >= FACE_SCORE)
        corners = np.concatenate([centres - distances[:, :2], centres + distances[:, 2:]], axis=1)
        landmarks = offsets.reshape(-1, 5, 2) + centres[:, None, :]
        boxes.append(np.concatenate([corners[kept], scores[kept, None]], axis=1))
        points.append(landmarks[kept])
    found = np.concatenate(boxes).astype(np.float32)
    if not len(found):
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
    found[:, :4] /= scale
    landmarks = np.concatenate(points) / scale
    order = np.argsort(-found[:, 4], kind="stable")
    found, landmarks = found[order], landmarks[order]
    keep = non_max_suppression(found, np.arange(len(found)), FACE_IOU)
    return found[keep], landmarks[keep]


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 rotation + uniform scale + translation mapping `source` points onto `target` with the least
    squared error (Umeyama's closed form)."""
    src, dst = source.astype(np.float64), target.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(covariance) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_c.var(axis=0).sum()
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def aligned_face(bgr: np.ndarray, landmarks: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """The face warped so its landmarks sit on ArcFace's template (scaled to `size`)."""
    matrix = similarity_transform(landmarks, TEMPLATE * (size / FACE_SIZE))
    return cv2.warpAffine(bgr, matrix, (size, size), borderValue=0.0)


def recognizer_normalisation(recognizer: OnnxNetwork) -> tuple[float, float]:
    """(mean, std) the recognizer's input wants: MXNet-converted ArcFace files subtract and scale inside
    the network (a Sub and a Mul among their first layers: raw pixels in), the others take
    (x - 127.5) / 127.5 (insightface's rule)."""
    names = list(recognizer.net.getLayerNames()[:8])  # the ONNX node names (OpenCV skips constants)
    subtracts = any(n.startswith(("Sub", "_minus")) for n in names)
    multiplies = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if subtracts and multiplies else (RECOGNIZE_MEAN, RECOGNIZE_STD)


def face_embedding(recognizer: OnnxNetwork, face: np.ndarray, *, normalised: bool = True) -> np.ndarray:
    """The 512-number identity of an aligned 112x112 BGR face, of length 1 (`normalised`, FaceID's) or as
    the network gives it (InstantID's)."""
    mean, std = recognizer_normalisation(recognizer)
    blob = cv2.dnn.blobFromImage(face, 1.0 / std, (FACE_SIZE, FACE_SIZE), (mean,) * 3, swapRB=True)
    embedding = recognizer.run(blob)[0].reshape(-1).astype(np.float32)
    return embedding / np.linalg.norm(embedding) if normalised else embedding


def largest_face(detector: OnnxNetwork, bgr: np.ndarray, purpose: str = "FaceID") -> np.ndarray:
    """The five landmarks [5, 2] of the largest face in a BGR picture (the extension's rule: largest box);
    InvalidRequestError when there is none."""
    boxes, landmarks = detect_faces(detector, bgr)
    if not len(boxes):
        raise InvalidRequestError(f"InsightFace found no face in the picture; {purpose} needs one")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return landmarks[int(np.argsort(areas, kind="stable")[-1])]


def largest_face_embedding(detector: OnnxNetwork, recognizer: OnnxNetwork, rgb: np.ndarray) -> np.ndarray:
    """The identity of the largest face in an RGB picture; InvalidRequestError when there is none."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return face_embedding(recognizer, aligned_face(bgr, largest_face(detector, bgr)))
