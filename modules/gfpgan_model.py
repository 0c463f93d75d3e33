"""A1111's `modules.gfpgan_model`: `gfpgan_fix_faces` and `gfpgan_face_restorer` (None until
GFPGANv1.4.pth is in models/GFPGAN, as in A1111 before its model is set up)."""

from __future__ import annotations

import logging
from typing import Any

from modules import face_restoration_utils

log = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    if name == "gfpgan_face_restorer":
        return face_restoration_utils.builtin_restorer("GFPGAN")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def gfpgan_fix_faces(np_image: Any) -> Any:
    restorer = face_restoration_utils.builtin_restorer("GFPGAN")
    if restorer is None:
        from modules import shared

        log.warning("%s; the image is unchanged", shared.app().faces.missing_message("GFPGAN"))
        return np_image
    return restorer.restore(np_image)


def setup_model(dirname: str) -> None:
    """A1111 loads the GFPGAN model here; Sumi finds it in models/GFPGAN (--gfpgan-models-path)."""
