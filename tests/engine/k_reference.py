"""k-diffusion's own `sampling.py` (0.1.1, the math A1111 1.10 runs) as the tests' reference.

The package's `__init__` imports torchvision, which Sumi does not install, so only `sampling.py` is
loaded, by file path, as a submodule of a stand-in `k_diffusion` package whose `utils` holds the one
helper it uses (`append_dims`). `torchdiffeq` is needed only by `log_likelihood`; a stand-in is used
when it is not installed. k-diffusion comes from requirements-test-nodeps.txt (installed with --no-deps).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from functools import cache
from pathlib import Path

import torch


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    return x[(...,) + (None,) * (target_dims - x.ndim)]


@cache
def k_sampling() -> types.ModuleType:
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("k-diffusion is not installed: pip install --no-deps -r requirements-nodeps.txt")
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    package = types.ModuleType("_kd_reference")
    package.__path__ = [str(path.parent)]
    utils = types.ModuleType("_kd_reference.utils")
    utils.append_dims = _append_dims  # pyright: ignore[reportAttributeAccessIssue]
    package.utils = utils  # pyright: ignore[reportAttributeAccessIssue]
    sys.modules.setdefault("_kd_reference", package)
    sys.modules.setdefault("_kd_reference.utils", utils)
    if importlib.util.find_spec("torchdiffeq") is None:
        stub = types.ModuleType("torchdiffeq")
        stub.odeint = None  # pyright: ignore[reportAttributeAccessIssue]
        sys.modules.setdefault("torchdiffeq", stub)
    module_spec = importlib.util.spec_from_file_location("_kd_reference.sampling", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["_kd_reference.sampling"] = module
    module_spec.loader.exec_module(module)
    return module


@cache
def k_external() -> types.ModuleType:
    """k-diffusion's `external.py` (the CompVis model wrappers and their `DiscreteSchedule`)."""
    sampling = k_sampling()
    path = Path(str(sampling.__file__)).parent / "external.py"
    package = sys.modules["_kd_reference"]
    package.sampling = sampling  # pyright: ignore[reportAttributeAccessIssue]
    module_spec = importlib.util.spec_from_file_location("_kd_reference.external", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["_kd_reference.external"] = module
    module_spec.loader.exec_module(module)
    return module


class Gaussian:
    """Data x0 ~ N(mean, std^2) per element: its exact denoiser E[x0 | x0 + sigma * eps = x]."""

    def __init__(self, mean: float = 0.3, std: float = 0.8) -> None:
        self.mean, self.std = mean, std

    def denoised(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s2 = torch.as_tensor(sigma, dtype=x.dtype)
        if s2.ndim:
            s2 = s2.view(-1, *([1] * (x.ndim - 1)))
        s2 = s2**2
        v = self.std**2
        return (v * x + s2 * self.mean) / (v + s2)
