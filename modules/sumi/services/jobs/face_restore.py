"""Restore faces in txt2img / img2img jobs, as A1111's `process_images` does.

`p.restore_faces` None means the setting `face_restoration`. When on, each image is restored after
decoding (after the scripts' postprocess_batch hooks, before postprocess_image and img2img's overlay of
the original), with the restorer of the setting `face_restoration_model` and CodeFormer's fidelity
`code_former_weight`; `save_images_before_face_restoration` keeps a copy first. The infotext says
`Face restoration: <name>`. Asked for with no restorer or detector weights, the job warns (naming the
file to put where) and the images stay as generated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from modules.sumi.engine.errors import EngineError
from modules.sumi.services.faces.registry import FaceRestorers
from modules.sumi.services.jobs.processing import StableDiffusionProcessing
from modules.sumi.services.settings.options import Options

INFOTEXT_KEY = "Face restoration"


def prepare(p: StableDiffusionProcessing, faces: FaceRestorers | None, options: Options) -> list[str]:
    """Decide whether the job restores faces and with which restorer (recorded for the infotext);
    returns the warnings when it was asked for and cannot be done."""
    if p.restore_faces is None:
        p.restore_faces = bool(options.face_restoration)
    p.extra_generation_params.pop(INFOTEXT_KEY, None)
    if not p.restore_faces:
        return []
    wanted = options.face_restoration_model
    problem = faces.problem(wanted) if faces is not None else "Face restoration is not available"
    if problem is not None or faces is None:
        return [f"{problem}; the images are not face-restored"]
    p.extra_generation_params[INFOTEXT_KEY] = faces.find(wanted).name
    return []


def per_image(
    p: StableDiffusionProcessing,
    faces: FaceRestorers | None,
    options: Options,
    save_before: Callable[[int, Any], None],
    warn: Callable[[list[str]], None],
) -> Callable[[int, Any], Any] | None:
    """The step run on each image of a batch (`(batch index, image) -> image`), or None when the job
    does not restore faces. `save_before(i, image)` saves the copy A1111 names -before-face-restoration."""
    name = p.extra_generation_params.get(INFOTEXT_KEY)
    if not p.restore_faces or not name or faces is None:
        return None

    def restore(i: int, image: Any) -> Any:
        if options.save_images_before_face_restoration:
            save_before(i, image)
        try:
            result = faces.restore(np.asarray(image.convert("RGB")), name, float(options.code_former_weight))
        except EngineError as exc:  # a broken weights file: say so, keep the image
            warn([f"Face restoration failed: {exc}"])
            return image
        return Image.fromarray(result.image)

    return restore
