"""A1111's `modules.face_restoration`. Sumi has no face restoration models (`shared.face_restorers` is
empty), so `restore_faces` returns the image unchanged, as A1111 does when no restorer is set up."""

from __future__ import annotations

from typing import Any


class FaceRestoration:
    """Base class of A1111's face restorers (CodeFormer, GFPGAN)."""

    def name(self) -> str:
        return "None"

    def restore(self, np_image: Any) -> Any:
        return np_image


def restore_faces(np_image: Any, w: float | None = None) -> Any:
    from modules import shared

    wanted = shared.opts.face_restoration_model
    restorers = [r for r in shared.face_restorers if wanted is None or r.name() == wanted]
    return restorers[0].restore(np_image) if restorers else np_image
