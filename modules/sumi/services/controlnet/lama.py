"""`inpaint_only+lama` for a ControlNet unit: each image's masked part filled by LaMa before the unit
runs as `inpaint_only` (sd-webui-controlnet's order; see `engine.controlnet.lama`).

The LaMa weights are sd-webui-controlnet's `lama/ControlNetLama.pth` in the annotator folder, loaded
through spandrel on the job's device and kept until the file changes. With "Resize and Fill" the image
is first fitted to the generation size with its padding masked, so LaMa also paints the padding (the
extension's outpainting fix).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.controlnet.image_fit import ResizeMode, fit_to_target, parse_resize_mode, to_rgb
from modules.sumi.engine.controlnet.lama import fill_with_lama
from modules.sumi.engine.controlnet.preprocessors import Preprocessor
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.img2img import encode
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.upscalers.spandrel_loader import load_model
from modules.sumi.services.controlnet.units import ControlNetUnit

LAMA_PREPROCESSOR = "inpaint_only+lama"


class LamaFill:
    def __init__(self, annotator_dir: Callable[[], Path], allow_unsafe_pickle: bool = False) -> None:
        self._annotator_dir = annotator_dir
        self._allow_unsafe_pickle = allow_unsafe_pickle
        self._loaded: tuple[tuple[Path, float, str], Any] | None = None
        self._lock = threading.Lock()

    def model(self, preprocessor: Preprocessor, device: torch.device) -> Any:
        """The LaMa network on `device`; a clear refusal naming the file when it is not there."""
        folder = self._annotator_dir()
        preprocessor.check_files(folder)
        path = preprocessor.annotator_files[0].find(folder)
        assert path is not None
        key = (path, path.stat().st_mtime, str(device))
        with self._lock:
            if self._loaded is None or self._loaded[0] != key:
                self._loaded = None
                descriptor = load_model(path, allow_unsafe_pickle=self._allow_unsafe_pickle)
                if descriptor.architecture.id != "LaMa":
                    raise ModelLoadError(f"{path}: a {descriptor.architecture.name} model, not LaMa")
                self._loaded = (key, descriptor.to(device))
            return self._loaded[1]

    def filled(
        self,
        preprocessor: Preprocessor,
        unit: ControlNetUnit,
        masks: list[np.ndarray],
        size: tuple[int, int],
        device: torch.device,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The unit's images with their masked parts painted, and the masks (both at the generation
        size with Resize and Fill, else at each image's size)."""
        model = self.model(preprocessor, device)
        outer_fit = parse_resize_mode(unit.resize_mode) is ResizeMode.RESIZE_AND_FILL
        images_out: list[np.ndarray] = []
        masks_out: list[np.ndarray] = []
        count = max(len(unit.images), len(masks))
        for i in range(count):
            image = to_rgb(unit.images[min(i, len(unit.images) - 1)])
            mask = _sized_mask(masks[min(i, len(masks) - 1)], image)
            if outer_fit:
                image = fit_to_target(image, size[0], size[1], unit.resize_mode)
                gray = np.repeat(mask[:, :, None], 3, axis=2)
                mask = np.ascontiguousarray(
                    fit_to_target(gray, size[0], size[1], unit.resize_mode, fill=255)[:, :, 0]
                )
            images_out.append(fill_with_lama(model, image, mask))
            masks_out.append(mask)
        return images_out, masks_out


def _sized_mask(mask: np.ndarray, image: np.ndarray) -> np.ndarray:
    if mask.ndim == 3:
        mask = mask[:, :, 0]
    if mask.shape[:2] != image.shape[:2]:
        resized = Image.fromarray(mask).resize((image.shape[1], image.shape[0]), Image.Resampling.LANCZOS)
        mask = np.asarray(resized)
    return np.ascontiguousarray(mask.astype(np.uint8))


def latents_of(sd: SDModel, maps: list[np.ndarray]) -> torch.Tensor:
    """The VAE latents of the filled control images (the extension encodes the unit's hint)."""
    pixels = torch.from_numpy(np.stack(maps).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    return encode(sd, pixels.to(device=sd.device, dtype=sd.vae.dtype) * 2 - 1)
