"""A1111's `modules.face_restoration`: the `FaceRestoration` base class and `restore_faces`, which uses
the restorer named by the setting `face_restoration_model` among `shared.face_restorers` (GFPGAN and
CodeFormer when their weights are in models/GFPGAN and models/Codeformer)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class FaceRestoration:
    """Base class of A1111's face restorers (CodeFormer, GFPGAN, and extensions' own)."""

    def name(self) -> str:
        return "None"

    def restore(self, np_image: Any) -> Any:
        return np_image


def restore_faces(np_image: Any, w: float | None = None) -> Any:
    """The picture with its faces restored; unchanged (with a warning in the log) when the chosen
    restorer is not installed. `w` is CodeFormer's weight (default: the setting)."""
    from modules import shared

    wanted = shared.opts.face_restoration_model
    restorers = [r for r in shared.face_restorers if wanted is None or r.name() == wanted]
    if not restorers:
        problem = shared.app().faces.problem(wanted)
        log.warning("%s; the image is unchanged", problem or f"no face restorer called {wanted!r}")
        return np_image
    restorer = restorers[0]
    if w is not None and getattr(restorer, "takes_weight", False):
        return restorer.restore(np_image, w=w)
    return restorer.restore(np_image)
