"""Auto focal point crop (A1111's built-in Extras script `scripts/postprocessing_focal_crop.py`).

Crops each picture to the target size (the Upscale script's "Scale to" size, or the picture times
"Scale by") around its focal point: the weighted average of where the faces are, the most detailed
stretch along the long side (entropy) and the corners (edges). Faces are found with Sumi's RetinaFace
detector (`detection_Resnet50_Final.pth` in models/GFPGAN, the face restorers' file); without it the
face weight is left out and the other two decide, nothing is downloaded. "Create debug image" adds the
scaled picture annotated with what was found (saved with the `focal-crop-debug` suffix, not processed
further). No infotext entries, as in A1111.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
import numpy as np

from modules import scripts_postprocessing, shared, ui_components
from modules.sumi.builtin_scripts.support.targets import target_size
from modules.sumi.engine.imageprep.focal import Box, FaceFinder, FocalWeights, focal_crop

NAME = "Auto focal point crop"


class ScriptPostprocessingFocalCrop(scripts_postprocessing.ScriptPostprocessing):
    name = NAME
    order = 4000

    def ui(self) -> dict[str, Any]:
        with ui_components.InputAccordion(False, label=NAME) as enable:
            face_weight = gr.Slider(
                label="Focal point face weight", value=0.9, minimum=0.0, maximum=1.0, step=0.05,
                elem_id="postprocess_focal_crop_face_weight",
            )  # fmt: skip
            entropy_weight = gr.Slider(
                label="Focal point entropy weight", value=0.15, minimum=0.0, maximum=1.0, step=0.05,
                elem_id="postprocess_focal_crop_entropy_weight",
            )  # fmt: skip
            edges_weight = gr.Slider(
                label="Focal point edges weight", value=0.5, minimum=0.0, maximum=1.0, step=0.05,
                elem_id="postprocess_focal_crop_edges_weight",
            )  # fmt: skip
            debug = gr.Checkbox(label="Create debug image", elem_id="train_process_focal_crop_debug")
        return {
            "enable": enable,
            "face_weight": face_weight,
            "entropy_weight": entropy_weight,
            "edges_weight": edges_weight,
            "debug": debug,
        }

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        enable: bool = False,
        face_weight: float = 0.9,
        entropy_weight: float = 0.15,
        edges_weight: float = 0.5,
        debug: bool = False,
    ) -> None:
        if not enable:
            return
        size = target_size(pp, NAME)
        if size is None:
            return
        weights = FocalWeights(float(face_weight), float(entropy_weight), float(edges_weight))
        finder = face_finder() if weights.face > 0 else None
        result, *others = focal_crop(pp.image.convert("RGB"), *size, weights, finder, bool(debug))
        pp.image = result
        pp.extra_images.extend(
            pp.create_copy(x, nametags=["focal-crop-debug"], disable_processing=True) for x in others
        )


def face_finder() -> FaceFinder | None:
    """Sumi's RetinaFace when its file is in place, else None (the face weight drops out)."""
    faces = shared.app().faces
    if faces.detector_path() is None:
        return None

    def find(image_rgb: np.ndarray) -> Sequence[Box]:
        return [face.box for face in faces.find_faces(image_rgb)]

    return find
