"""A1111's `modules.devices`: the device and dtypes Sumi runs on, and small torch helpers.

`device`, `dtype`, `dtype_vae`, `dtype_unet` (and `dtype_inference`) are the running App's choice
(from `--use-cpu`, `--no-half`, `--bf16`, ...), read on access; before there is an App they are the
best device and its default dtype. `device_interrogate`, `device_gfpgan`, `device_esrgan` and
`device_codeformer` follow `--use-cpu <task>` as in A1111.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Any

import torch

from modules import shared
from modules.sumi.engine.errors import NansException
from modules.sumi.engine.nan_check import nan_message

cpu = torch.device("cpu")
fp8 = False
force_fp16 = False
unet_needs_upcast = False  # Sumi never upcasts the UNet behind the caller's back


def has_mps() -> bool:
    if sys.platform != "darwin":
        return False
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def has_xpu() -> bool:
    return False


def get_cuda_device_id() -> int:
    app = shared.running_app()
    device_id = getattr(app.args, "device_id", None) if app is not None else None
    return int(device_id) if device_id not in (None, "") else 0


def get_cuda_device_string() -> str:
    return f"cuda:{get_cuda_device_id()}"


def get_optimal_device_name() -> str:
    if torch.cuda.is_available():
        return get_cuda_device_string()
    return "mps" if has_mps() else "cpu"


def get_optimal_device() -> torch.device:
    return torch.device(get_optimal_device_name())


def get_device_for(task: str) -> torch.device:
    """CPU when `--use-cpu` names the task (or "all"), else the best device."""
    app = shared.running_app()
    use_cpu = (getattr(app.args, "use_cpu", None) or []) if app is not None else []
    return cpu if task in use_cpu or "all" in use_cpu else get_optimal_device()


def torch_gc() -> None:
    """Free cached memory on the GPU (a no-op on the CPU)."""
    gc.collect()
    if torch.cuda.is_available():
        with torch.cuda.device(get_cuda_device_string()):
            torch.cuda.empty_cache()
            torch.cuda.ipc_collect()
    if has_mps():
        torch.mps.empty_cache()


def torch_npu_set_device() -> None:
    """A1111 Ascend NPU support; Sumi has none."""


def enable_tf32() -> None:
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def cond_cast_unet(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(_dtype("dtype")) if unet_needs_upcast else tensor


def cond_cast_float(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if unet_needs_upcast else tensor


def autocast(disable: bool = False) -> Any:
    """A1111's mixed-precision context: `torch.autocast` on CUDA in half precision, else nothing."""
    if disable or _dtype("dtype") == torch.float32 or not torch.cuda.is_available():
        return contextlib.nullcontext()
    if _device().type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=_dtype("dtype"))


def without_autocast(disable: bool = False) -> Any:
    if disable or not torch.is_autocast_enabled():
        return contextlib.nullcontext()
    return torch.autocast("cuda", enabled=False)


def test_for_nans(x: torch.Tensor, where: str) -> None:
    """Raise NansException when a tensor is all NaN, with A1111's message for `where` ("unet", "vae")
    unless --disable-nan-check. Sumi's own jobs run a stricter check (any NaN/inf) in the engine."""
    app = shared.running_app()
    if app is not None and getattr(app.args, "disable_nan_check", False):
        return
    if not torch.isnan(x).all().item():
        return
    raise NansException(nan_message(where, _dtype("dtype_vae" if where == "vae" else "dtype")), where)


def first_time_calculation() -> None:
    """A1111 warms up cuDNN here; Sumi's first job does that."""


def randn(seed: int, shape: Any, generator: Any = None) -> torch.Tensor:
    """Noise for `seed` from the configured source (A1111 sets this to `modules.rng.randn`)."""
    from modules import rng

    return rng.randn(seed, shape, generator)


def randn_local(seed: int, shape: Any) -> torch.Tensor:
    from modules import rng

    return rng.randn_local(seed, shape)


def randn_like(x: torch.Tensor) -> torch.Tensor:
    from modules import rng

    return rng.randn_like(x)


def randn_without_seed(shape: Any, generator: Any = None) -> torch.Tensor:
    from modules import rng

    return rng.randn_without_seed(shape, generator)


def manual_seed(seed: int) -> None:
    from modules import rng

    rng.manual_seed(seed)


def _device() -> torch.device:
    app = shared.running_app()
    return app.devices.device if app is not None else get_optimal_device()


def _dtype(which: str) -> torch.dtype:
    app = shared.running_app()
    if app is None:
        return torch.float16 if torch.cuda.is_available() else torch.float32
    return app.devices.vae_dtype if which == "dtype_vae" else app.devices.dtype


def __getattr__(name: str) -> Any:
    if name == "device":
        return _device()
    if name in ("dtype", "dtype_unet", "dtype_inference", "dtype_vae"):
        return _dtype(name)
    tasks = {
        "device_interrogate": "interrogate",
        "device_gfpgan": "gfpgan",
        "device_esrgan": "esrgan",
        "device_codeformer": "codeformer",
    }
    if name in tasks:
        return get_device_for(tasks[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
