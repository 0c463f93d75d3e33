"""A1111's `modules.gfpgan_model`: no GFPGAN model in Sumi, so faces come back unchanged, as A1111
does when GFPGAN is not set up."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

gfpgan_face_restorer: Any = None


def gfpgan_fix_faces(np_image: Any) -> Any:
    log.warning("GFPGAN face restoration is not available in Sumi; the image is unchanged")
    return np_image


def setup_model(dirname: str) -> None:
    """A1111 loads the GFPGAN model here; Sumi has none to load."""
