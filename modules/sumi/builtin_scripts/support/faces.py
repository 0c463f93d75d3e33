"""The step the GFPGAN and CodeFormer Extras scripts share: restore the faces, blend by visibility."""

from __future__ import annotations

import numpy as np
from PIL import Image

from modules.scripts_postprocessing import PostprocessedImage
from modules.sumi.services.faces.registry import FaceRestorationUnavailable, FaceRestorers


def restore_and_blend(
    faces: FaceRestorers, pp: PostprocessedImage, name: str, visibility: float, weight: float
) -> None:
    """Replace `pp.image` by its faces restored with `name` ("GFPGAN" / "CodeFormer", `weight` is
    CodeFormer's), blended over the original at `visibility` (1: the restored picture alone). A missing
    restorer or detector is a FaceRestorationUnavailable naming the file to put where."""
    problem = faces.problem(name)
    if problem is not None:
        raise FaceRestorationUnavailable(problem)
    source = pp.image.convert("RGB")
    restored = Image.fromarray(faces.restore(np.asarray(source, dtype=np.uint8), name, weight).image)
    pp.image = Image.blend(source, restored, visibility) if visibility < 1.0 else restored
