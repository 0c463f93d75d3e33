"""controlnet-aux (0.0.10) as the annotator tests' reference: its network modules loaded without the
package's `__init__`, which imports every annotator and their extra dependencies (torchvision, timm,
mediapipe...). controlnet-aux comes from requirements-test-nodeps.txt (installed with --no-deps)."""

from __future__ import annotations

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
