"""The whole face restoration of one picture (A1111's `restore_with_face_helper`): find the faces, cut
each to the 512 px layout, run the restorer on it in [-1, 1], paste the results back with soft edges.

`restore_face` is the model call: a (1, 3, 512, 512) RGB tensor in [-1, 1] in, the same shape out
(`gfpgan_call`, `codeformer_call` wrap spandrel's networks the way A1111 calls them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from modules.sumi.engine.faces.align import FACE_SIZE, crop_face, face_transform, paste_face
from modules.sumi.engine.faces.detect import Face, detect_faces
from modules.sumi.engine.faces.retinaface import RetinaFace

MIN_SIDE = 512  # smaller pictures are enlarged to this for the work, then brought back
log = logging.getLogger(__name__)

RestoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class RestoreResult:
    image: np.ndarray  # RGB uint8, the input's size
    faces: list[Face]  # in the input's pixels


def gfpgan_call(net: torch.nn.Module) -> RestoreFn:
    """GFPGAN: the first output is the restored face (A1111 asks for no intermediate RGB images)."""
    return lambda x: net(x, return_rgb=False)[0]


def codeformer_call(net: torch.nn.Module, weight: float) -> RestoreFn:
    """CodeFormer: `weight` is the fidelity (0: the most restored, 1: closest to the input)."""
    return lambda x: net(x, weight=float(weight))[0]


def to_model_input(face_bgr: np.ndarray, device: torch.device | str) -> torch.Tensor:
    rgb = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return (torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2 - 1).to(device)


def from_model_output(out: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) RGB in [-1, 1] -> BGR uint8 (A1111 truncates, it does not round)."""
    rgb = ((out[0].detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    return (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) * 255.0).astype(np.uint8)


def restore_faces(
    image_rgb: np.ndarray,
    detector: RetinaFace,
    restore_face: RestoreFn,
    device: torch.device | str = "cpu",
) -> RestoreResult:
    """Restore every face of an RGB uint8 picture; with no face found the picture comes back unchanged.
    A face whose model call fails keeps its original pixels (the error is logged), as in A1111."""
    original = np.ascontiguousarray(image_rgb[:, :, :3])
    height, width = original.shape[:2]
    bgr = cv2.cvtColor(original, cv2.COLOR_RGB2BGR)
    scale = max(1.0, MIN_SIDE / min(height, width))
    if scale != 1.0:
        bgr = cv2.resize(bgr, (0, 0), fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    faces = detect_faces(detector, bgr, device)
    if not faces:
        return RestoreResult(original.copy(), [])
    canvas = bgr.astype(np.float32)
    touched = np.zeros(bgr.shape[:2], np.float32)
    for face in faces:
        try:
            matrix = face_transform(face.landmarks)
        except ValueError:
            continue
        crop = crop_face(bgr, matrix)
        try:
            with torch.no_grad():
                out = restore_face(to_model_input(crop, device))
            restored = from_model_output(out)
        except Exception:  # A1111 keeps going with the unrestored face
            log.exception("face restoration failed for one face; it is left as it was")
            restored = crop
        if restored.shape[:2] != (FACE_SIZE, FACE_SIZE):
            restored = cv2.resize(restored, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)
        canvas, mask = paste_face(canvas, restored.astype(np.float32), matrix)
        touched = np.maximum(touched, mask)
    out_bgr = np.clip(canvas, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(out_bgr, cv2.COLOR_BGR2RGB)
    if rgb.shape[:2] != (height, width):
        # back to the input's size; only the faces' surroundings take the resampled pixels, so the rest
        # of a small picture stays exactly as it was (A1111 resamples the whole picture)
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        near = cv2.resize(touched, (width, height), interpolation=cv2.INTER_LINEAR) > 0
        rgb = np.where(near[:, :, None], rgb, original)
    found = [
        Face(tuple(v / scale for v in f.box), f.score, f.landmarks / scale)  # type: ignore[arg-type]
        for f in faces
    ]
    return RestoreResult(rgb, found)
