"""Upscaler models loaded on demand through spandrel, kept in a small cache (A1111 keeps the last one).

A model runs on the job device; on CUDA in fp16 when its architecture supports half precision and
--no-half / --upcast-sampling are not given (A1111's `prefer_half`). A file spandrel does not know, or
one that is not an image-to-image model (LaMa, a face restorer, a checkpoint), is a clear
ModelLoadError naming the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.upscalers.spandrel_loader import load_model

UPSCALING_PURPOSES = ("SR", "Restoration")


def load_descriptor(
    path: Path,
    *,
    device: torch.device,
    prefer_half: bool,
    allow_unsafe_pickle: bool = False,
    dtype: torch.dtype | None = None,
) -> Any:
    """A spandrel ModelDescriptor on `device` (half when asked for and supported), in eval mode."""
    descriptor = load_model(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if prefer_half and descriptor.supports_half:
        descriptor.model.half()
    if dtype is not None:
        descriptor.model.to(dtype=dtype)
    descriptor.model.to(device)
    return descriptor.eval()


def check_upscaler(path: Path, descriptor: Any) -> None:
    """An image-to-image model (super resolution or restoration), else a clear error."""
    purpose = getattr(descriptor, "purpose", None)
    masked = type(descriptor).__name__ == "MaskedImageModelDescriptor"
    if masked or purpose not in UPSCALING_PURPOSES:
        raise ModelLoadError(
            f"{path}: a {descriptor.architecture.name} model ({purpose}), not an upscaler; "
            "move it out of the upscaler folders"
        )


class LoadedModels:
    """The last `size` upscaler models, by file, device and precision."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._models: OrderedDict[tuple[Path, str, bool], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, *, device: torch.device, prefer_half: bool, allow_unsafe_pickle: bool) -> Any:
        key = (Path(path).resolve(), str(device), prefer_half)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            descriptor = load_descriptor(
                path, device=device, prefer_half=prefer_half, allow_unsafe_pickle=allow_unsafe_pickle
            )
            check_upscaler(path, descriptor)
            self._models[key] = descriptor
            while len(self._models) > max(1, self.size):
                self._models.popitem(last=False)
            return descriptor

    def clear(self) -> None:
        """Drop every loaded model (after a rescan, or to free memory)."""
        with self._lock:
            self._models.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __len__(self) -> int:
        return len(self._models)
