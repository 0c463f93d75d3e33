"""ControlNet for a job: units in, engine units (models + sized control images), maps and infotext out.

For each enabled unit: run its preprocessor at the processor resolution (or the pixel-perfect one),
bring the map to the generation size by the unit's resize mode, load its model for the active
checkpoint, and describe it in the infotext (`ControlNet 0: "Module: canny, ..."`). Everything is
checked before sampling starts, so a bad unit fails the job without touching the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.controlnet.control import ControlUnit
from modules.sumi.engine.controlnet.image_fit import (
    fit_to_target,
    pixel_perfect_resolution,
    to_control_tensor,
)
from modules.sumi.engine.controlnet.preprocessors import Preprocessor, get_preprocessor
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.model import SDModel
from modules.sumi.services.controlnet.models import ControlNetModels
from modules.sumi.services.controlnet.units import ControlNetUnit
from modules.sumi.services.settings.options import Options


@dataclass
class PreparedControl:
    units: list[ControlUnit] = field(default_factory=list)
    detected_maps: list[Image.Image] = field(default_factory=list)  # appended to the job's images
    infotext: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    width: int
    height: int
    batch_size: int
    seed: int = 0


class ControlNetService:
    def __init__(self, models: ControlNetModels, options: Options, annotator_dirs: Sequence[Path]):
        self.models = models
        self.options = options
        self.annotator_dirs = [Path(d) for d in annotator_dirs]

    @property
    def annotator_dir(self) -> Path:
        """The first annotator folder that exists (models/ControlNet/annotators by default)."""
        return next((d for d in self.annotator_dirs if d.is_dir()), self.annotator_dirs[0])

    def prepare(self, units: Sequence[ControlNetUnit], sd: SDModel, target: Target) -> PreparedControl:
        prepared = PreparedControl()
        for index, unit in enumerate(units):
            if unit.enabled:
                self._prepare_unit(index, unit, sd, target, prepared)
        return prepared

    def _prepare_unit(
        self, index: int, unit: ControlNetUnit, sd: SDModel, target: Target, prepared: PreparedControl
    ) -> None:
        where = f"ControlNet unit {index}"
        if not unit.images:
            raise InvalidRequestError(f"{where} is enabled but has no image; upload one or disable the unit")
        if len(unit.images) not in (1, target.batch_size):
            raise InvalidRequestError(
                f"{where}: {len(unit.images)} images for a batch of {target.batch_size}; give 1 or {target.batch_size}"
            )
        file = self.models.find(unit.model)
        if file is None:
            raise InvalidRequestError(f"{where} is enabled but no model is selected")
        preprocessor = _preprocessor(unit.module, where)
        maps = [self.detect_for_target(preprocessor, unit, image, target) for image in unit.images]
        loaded = self.models.load(file, sd)
        tensors = [to_control_tensor(m, sd.device, sd.dtype) for m in maps]
        prepared.units.append(
            ControlUnit(
                loaded.model,
                torch.cat(tensors),
                weight=unit.weight,
                guidance_start=unit.guidance_start,
                guidance_end=unit.guidance_end,
                control_mode=unit.control_mode,
                global_average_pooling=loaded.global_average_pooling,
                low_vram=unit.low_vram,
            )
        )
        unit.model = file.name
        unit.module = preprocessor.name
        self._describe(index, unit, preprocessor, maps, prepared)

    def _describe(self, index: int, unit: ControlNetUnit, preprocessor: Preprocessor, maps, prepared) -> None:
        text = unit.infotext()
        if text is not None:
            prepared.infotext[f"ControlNet {index}"] = text
        if (
            unit.save_detected_map
            and preprocessor.name != "none"
            and not self.options.control_net_no_detectmap
        ):
            prepared.detected_maps.extend(Image.fromarray(m) for m in maps)

    def detect_for_target(
        self, preprocessor: Preprocessor, unit: ControlNetUnit, image: np.ndarray, target: Target
    ) -> np.ndarray:
        """The unit's control map at the generation size."""
        resolution, exact = unit.processor_res, False
        if unit.pixel_perfect:
            raw = (image.shape[0], image.shape[1])
            resolution = pixel_perfect_resolution(raw, (target.height, target.width), unit.resize_mode)
            exact = True
        detected = preprocessor.run(
            image,
            resolution,
            unit.threshold_a,
            unit.threshold_b,
            annotator_dir=self.annotator_dir,
            seed=target.seed,
            exact_resolution=exact,
        )
        return fit_to_target(detected, target.width, target.height, unit.resize_mode)

    def detect(
        self,
        module: str,
        images: Sequence[np.ndarray],
        processor_res: float = -1,
        threshold_a: float = -1,
        threshold_b: float = -1,
    ) -> list[np.ndarray]:
        """Run a preprocessor on images at their own size (`/controlnet/detect`, the UI preview)."""
        preprocessor = _preprocessor(module, "ControlNet detect")
        return [
            preprocessor.run(image, processor_res, threshold_a, threshold_b, annotator_dir=self.annotator_dir)
            for image in images
        ]


def _preprocessor(module: str, where: str) -> Preprocessor:
    try:
        return get_preprocessor(module or "none")
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from exc
