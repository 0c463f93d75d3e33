"""controlnet-aux (0.0.10) as the annotator tests' reference: its network modules loaded without the
package's `__init__`, which imports every annotator and their extra dependencies (torchvision, timm,
mediapipe...). controlnet-aux comes from requirements-test-nodeps.txt (installed with --no-deps)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from functools import cache

PACKAGE = "controlnet_aux"


@cache
def aux_module(name: str) -> types.ModuleType:
    """`controlnet_aux.<name>` (e.g. "hed", "util"), imported under a bare stand-in package."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "controlnet-aux is not installed: pip install --no-deps -r requirements-test-nodeps.txt"
            )
        package = types.ModuleType(PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


class _ToTensor:
    """torchvision's ToTensor for an HxWxC array: CHW, uint8 scaled to 0..1, floats as they are."""

    def __call__(self, picture):
        import torch

        tensor = torch.from_numpy(picture.transpose((2, 0, 1))).contiguous()
        return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor


class _Normalize:
    """torchvision's Normalize: (x - mean) / std per channel, in the tensor's type."""

    def __init__(self, mean, std) -> None:
        self.mean, self.std = mean, std

    def __call__(self, tensor):
        import torch

        mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
        std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
        return tensor.clone().sub_(mean).div_(std)


class _Compose:
    def __init__(self, steps) -> None:
        self.steps = steps

    def __call__(self, value):
        for step in self.steps:
            value = step(value)
        return value


@contextlib.contextmanager
def _torchvision_stand_in():
    """controlnet-aux's openpose face, normalbae and leres modules import torchvision's transforms at
    import time (only LeReS calls them: ToTensor and Normalize, whose exact steps the stand-ins take);
    PyPI's torchvision does not load against the CPU torch, so a stand-in answers that import and is
    removed again at once (nothing else sees it)."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    vision, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    transforms.ToPILImage = object  # type: ignore[attr-defined]
    transforms.ToTensor, transforms.Normalize, transforms.Compose = _ToTensor, _Normalize, _Compose  # type: ignore[attr-defined]
    transforms.transforms = transforms  # type: ignore[attr-defined]  # `from torchvision.transforms import transforms`
    vision.transforms = transforms  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": vision, "torchvision.transforms": transforms})
    try:
        yield
    finally:
        del sys.modules["torchvision"], sys.modules["torchvision.transforms"]


@cache
def aux_module_without_torchvision(name: str) -> types.ModuleType:
    """`controlnet_aux.<name>` for modules that import torchvision but whose networks do not use it."""
    with _torchvision_stand_in():
        return aux_module(name)


def aux_openpose() -> types.ModuleType:
    """`controlnet_aux.open_pose` (OpenposeDetector, Body, Hand, Face)."""
    return aux_module_without_torchvision("open_pose")
