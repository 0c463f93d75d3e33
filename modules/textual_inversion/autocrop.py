"""A1111's `modules.textual_inversion.autocrop`: only the face-detection model lookup, without download."""

from __future__ import annotations

import os

from modules.sumi.util.unsupported import NotSupportedInSumi

YUNET_FILE = "face_detection_yunet_2022mar.onnx"
YUNET_URL = "https://github.com/opencv/opencv_zoo/blob/91fb0290f50896f38a0ab1e558b74b16bc009428/models/face_detection_yunet/face_detection_yunet_2022mar.onnx?raw=true"


def download_and_cache_models(dirname: str) -> str:
    """The path of the YuNet face detector in `dirname`; Sumi never downloads, so a missing file is an
    error saying where to save it."""
    path = os.path.join(dirname, YUNET_FILE)
    if os.path.exists(path):
        return path
    raise NotSupportedInSumi(
        f"Sumi does not download models: download {YUNET_URL} yourself and save it as {path}"
    )
