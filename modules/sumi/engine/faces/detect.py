"""Finding faces and their five landmarks (eyes, nose tip, mouth corners) with RetinaFace, as facexlib's
`FaceRestoreHelper.get_face_landmarks_5(resize=640, eye_dist_threshold=5)` does for A1111."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from modules.sumi.engine.faces.retinaface import (
    MEAN_BGR,
    RetinaFace,
    decode_boxes,
    decode_landmarks,
    nms,
    priors,
)

DETECT_SIZE = 640  # images whose short side is smaller are enlarged to it for detection
CONFIDENCE = 0.8
NMS_THRESHOLD = 0.4
MIN_EYE_DISTANCE = 5.0  # pixels: smaller faces and side views are skipped


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: np.ndarray  # (5, 2) float32: left eye, right eye, nose, left and right mouth corner


@torch.no_grad()
def run_detector(
    model: RetinaFace, image_bgr: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel boxes (N, 4), scores (N,) and landmarks (N, 10) for every anchor of a BGR uint8 image."""
    height, width = image_bgr.shape[:2]
    x = torch.from_numpy(image_bgr.astype(np.float32)).permute(2, 0, 1)[None]
    x = (x - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)).to(device)
    param = next(model.parameters())
    loc, scores, landmarks = model(x.to(param.dtype))
    anchors = priors(height, width)
    boxes = decode_boxes(loc[0].float().cpu(), anchors) * torch.tensor([width, height] * 2)
    points = decode_landmarks(landmarks[0].float().cpu(), anchors) * torch.tensor([width, height] * 5)
    return boxes, scores[0].float().cpu(), points


def select_faces(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    points: torch.Tensor,
    *,
    confidence: float = CONFIDENCE,
    nms_threshold: float = NMS_THRESHOLD,
    min_eye_distance: float = MIN_EYE_DISTANCE,
) -> list[Face]:
    """Keep the confident detections, remove overlapping ones, drop faces whose eyes are closer than
    `min_eye_distance` pixels; best score first."""
    confident = scores > confidence
    boxes, scores, points = boxes[confident], scores[confident], points[confident]
    keep = nms(boxes, scores, nms_threshold) if len(scores) else torch.zeros(0, dtype=torch.long)
    faces = []
    for i in keep.tolist():
        marks = points[i].view(5, 2).numpy().astype(np.float32)
        if float(np.linalg.norm(marks[0] - marks[1])) < min_eye_distance:
            continue
        box = tuple(float(v) for v in boxes[i])
        faces.append(Face(box, float(scores[i]), marks))  # type: ignore[arg-type]
    return faces


def detect_faces(model: RetinaFace, image_bgr: np.ndarray, device: torch.device | str = "cpu") -> list[Face]:
    """The faces in a BGR uint8 image, in its own pixel coordinates. A short side under 640 px is
    enlarged for detection (small faces are found as in A1111)."""
    height, width = image_bgr.shape[:2]
    scale = max(1.0, DETECT_SIZE / min(height, width))
    work = image_bgr
    if scale != 1.0:
        work = cv2.resize(
            image_bgr, (int(width * scale), int(height * scale)), interpolation=cv2.INTER_LINEAR
        )
    boxes, scores, points = run_detector(model, work, device)
    faces = select_faces(boxes, scores, points, min_eye_distance=MIN_EYE_DISTANCE * scale)
    if scale == 1.0:
        return faces
    return [Face(tuple(v / scale for v in f.box), f.score, f.landmarks / scale) for f in faces]  # type: ignore[arg-type]
