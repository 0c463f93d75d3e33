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


@contextlib.contextmanager
def _torchvision_stand_in():
    """controlnet-aux's openpose face and normalbae modules import torchvision's transforms at import
    time and their networks never call them; PyPI's torchvision does not load against the CPU torch, so
    a bare stand-in answers that import and is removed again at once (nothing else sees it)."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    vision, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    transforms.ToTensor = transforms.ToPILImage = object  # type: ignore[attr-defined]
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
