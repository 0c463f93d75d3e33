"""Cutting a face out to the 512 px FFHQ layout the restorers were trained on, and putting the restored
face back (facexlib's `align_warp_face` and `paste_faces_to_input_image` without a parsing net)."""

from __future__ import annotations

import cv2
import numpy as np

FACE_SIZE = 512
# where the five landmarks sit in a 512 px FFHQ-aligned face: eyes, nose tip, mouth corners
FFHQ_TEMPLATE = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.19360],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)
BORDER_BGR = (135, 133, 132)  # grey around a face cut close to the image edge


def face_transform(landmarks: np.ndarray) -> np.ndarray:
    """The similarity transform (2x3: rotation, uniform scale, shift) that takes the landmarks onto the
    template, fitted robustly (least median of squares)."""
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(landmarks, np.float32), FFHQ_TEMPLATE, method=cv2.LMEDS
    )
    if matrix is None:  # degenerate landmarks (all in one point): no transform exists
        raise ValueError("face landmarks do not define a transform")
    return matrix


def crop_face(image_bgr: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The 512x512 aligned face cut from the image."""
    return cv2.warpAffine(
        image_bgr, matrix, (FACE_SIZE, FACE_SIZE), borderMode=cv2.BORDER_CONSTANT, borderValue=BORDER_BGR
    )


def paste_face(image: np.ndarray, face: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` (float32, H x W x 3) with the 512 px `face` warped back by the inverse of `matrix` and
    blended through a soft mask: the face square shrunk by a twentieth of its side and blurred as much,
    so the seam fades out inside the face. Pixels outside the face square are left exactly as they were.
    Returns the new image and the mask (H x W, 0..1)."""
    height, width = image.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(face, inverse, (width, height))
    mask = cv2.warpAffine(np.ones((FACE_SIZE, FACE_SIZE), np.float32), inverse, (width, height))
    mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    pasted = mask[:, :, None] * back
    edge = int(float(mask.sum()) ** 0.5) // 20
    if edge > 0:
        centre = cv2.erode(mask, np.ones((edge * 2, edge * 2), np.uint8))
        soft = cv2.GaussianBlur(centre, (edge * 2 + 1, edge * 2 + 1), 0)
    else:
        soft = mask
    soft = soft * (mask > 0)  # the blur's last tails never reach past the face's square
    weight = soft[:, :, None]
    return weight * pasted + (1 - weight) * image, soft
