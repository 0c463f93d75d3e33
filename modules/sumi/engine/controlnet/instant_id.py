"""InstantID's face inputs (sd-webui-controlnet's `instant_id_face_keypoints` / `_embedding`), from
InsightFace's antelopev2 pack (`scrfd_10g_bnkps.onnx` finds faces, `glintr100.onnx` describes one), run
with OpenCV as FaceID's buffalo_l is.

As the extension: the picture is scaled to the processor resolution (short side) and edge-padded to
multiples of 64 first; the largest face is used. The keypoint map draws the face's five landmarks on
black: four limbs from the nose to the eyes and mouth corners (ellipses 4 px thick, in the colour of
their outer point, at 60 %), then a disc of radius 10 per landmark (red, green, blue, yellow, magenta
for the right eye, left eye, nose, right and left mouth corners). The embedding is the recogniser's
512 numbers as they come (InstantID reads them unnormalised, unlike FaceID).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from modules.sumi.engine.controlnet.annotators.dwpose import OnnxNetwork, load_onnx
from modules.sumi.engine.controlnet.annotators.runtime import AnnotatorFiles
from modules.sumi.engine.controlnet.detect_args import DetectArgs
from modules.sumi.engine.controlnet.image_fit import resize_with_pad
from modules.sumi.engine.controlnet.insightface import aligned_face, face_embedding, largest_face

KEYPOINT_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))  # eyes and mouth corners to the nose
LIMB_HALF_WIDTH = 4
LIMB_STRENGTH = 0.6
DISC_RADIUS = 10
INSTANT_ID_RESOLUTION = 512


def draw_face_keypoints(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """The keypoint map [H, W, 3] uint8 (RGB) of one face's five landmarks [5, 2]."""
    canvas = np.zeros((height, width, 3), np.float64)
    for outer, inner in LIMBS:
        (x0, y0), (x1, y1) = landmarks[outer], landmarks[inner]
        centre = (int(np.mean([x0, x1])), int(np.mean([y0, y1])))
        half_length = int(math.hypot(x0 - x1, y0 - y1) / 2)
        angle = int(math.degrees(math.atan2(y0 - y1, x0 - x1)))
        polygon = cv2.ellipse2Poly(centre, (half_length, LIMB_HALF_WIDTH), angle, 0, 360, 1)
        cv2.fillConvexPoly(canvas, np.asarray(polygon, np.int32), KEYPOINT_COLOURS[outer])
    drawing = (canvas * LIMB_STRENGTH).astype(np.uint8)
    for (x, y), colour in zip(landmarks, KEYPOINT_COLOURS, strict=True):
        cv2.circle(drawing, (int(x), int(y)), DISC_RADIUS, colour, -1)
    return drawing


def _padded_bgr(rgb: np.ndarray, resolution: int):
    padded = resize_with_pad(rgb, resolution)
    return padded, np.ascontiguousarray(padded.image[:, :, ::-1])


def face_keypoints(image: np.ndarray, args: DetectArgs, files: AnnotatorFiles) -> np.ndarray:
    """instant_id_face_keypoints: the largest face's landmarks drawn (detector: file 0)."""
    padded, bgr = _padded_bgr(image, args.resolution)
    landmarks = largest_face(files.network(load_onnx, 0), bgr, "InstantID")
    height, width = bgr.shape[:2]
    return padded.unpad(draw_face_keypoints(landmarks, height, width))


def instant_id_embedding(
    detector: OnnxNetwork, recognizer: OnnxNetwork, rgb: np.ndarray, resolution: int = INSTANT_ID_RESOLUTION
) -> np.ndarray:
    """instant_id_face_embedding: the largest face's unnormalised identity [512]."""
    _, bgr = _padded_bgr(rgb, resolution)
    landmarks = largest_face(detector, bgr, "InstantID")
    return face_embedding(recognizer, aligned_face(bgr, landmarks), normalised=False)
