"""Upscaler, restorer and inpainting weights loaded with spandrel, which tells the architecture
(ESRGAN, RealESRGAN compact, SwinIR, DAT, HAT, OmniSR, SPAN, GFPGAN, CodeFormer, LaMa, ...) from the
weights alone.

spandrel imports `torchvision.transforms.functional` at import time for two helpers (LaMa's `rotate`,
RestoreFormer's `normalize`). PyPI's torchvision cannot load next to the CPU build of torch, so Sumi
installs spandrel with `--no-deps`; when torchvision is missing or broken, `import_spandrel` serves
those names from small torch stand-ins for the length of spandrel's import only, then takes them out of
`sys.modules` again, so no other package ever sees a "torchvision". With a working torchvision
installed (most CUDA machines) spandrel uses it.
"""

from __future__ import annotations

import enum
import math
import sys
import threading
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import PICKLE_SUFFIXES, read_pickle, read_state_dict

_IMPORT_LOCK = threading.Lock()
_STAND_INS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class InterpolationMode(enum.Enum):
    """torchvision's names for the resampling filters (the ones spandrel passes)."""

    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def normalize(
    tensor: torch.Tensor, mean: list[float], std: list[float], inplace: bool = False
) -> torch.Tensor:
    """torchvision's `normalize` of a (..., C, H, W) tensor: (x - mean) / std per channel."""
    m = torch.as_tensor(mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
    return tensor.sub_(m).div_(s) if inplace else (tensor - m) / s


def rotate(
    img: torch.Tensor,
    angle: float | torch.Tensor,
    interpolation: InterpolationMode = InterpolationMode.NEAREST,
    expand: bool = False,
    center: list[int] | None = None,
    fill: float | None = None,
) -> torch.Tensor:
    """torchvision's `rotate` of a (N, C, H, W) tensor by `angle` degrees counter-clockwise about the
    centre, same size, outside filled with zeros (the only form spandrel uses)."""
    if expand or center is not None or fill not in (None, 0, 0.0):
        raise NotImplementedError("rotate: only the centred, same-size, zero-filled form is available")
    radians = torch.as_tensor(angle, dtype=torch.float32).reshape(()) * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    n, _, h, w = img.shape
    # output -> input sampling in normalised coordinates (x right, y down): the inverse rotation,
    # with the aspect ratio taken out so a rotation of pixels stays a rotation
    theta = torch.stack(
        [
            torch.stack([cos, -sin * h / w, torch.zeros(())]),
            torch.stack([sin * w / h, cos, torch.zeros(())]),
        ]
    ).to(img.device, torch.float32)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    mode = "nearest" if interpolation == InterpolationMode.NEAREST else "bilinear"
    out = F.grid_sample(img.float(), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out.to(img.dtype)


def _stand_in_modules() -> dict[str, types.ModuleType]:
    root, transforms, functional = (types.ModuleType(name) for name in _STAND_INS)
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    functional.normalize = normalize  # type: ignore[attr-defined]
    functional.rotate = rotate  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    return dict(zip(_STAND_INS, (root, transforms, functional), strict=True))


def _forget(prefixes: tuple[str, ...]) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] in prefixes]:
        del sys.modules[name]


def import_spandrel() -> types.ModuleType:
    """spandrel with its extra architectures (CodeFormer, ...) registered when installed."""
    with _IMPORT_LOCK:
        if "spandrel" in sys.modules and hasattr(sys.modules["spandrel"], "ModelLoader"):
            return sys.modules["spandrel"]
        try:
            import spandrel
        except ModuleNotFoundError as exc:
            if exc.name == "spandrel":
                raise ModelLoadError(
                    "spandrel is not installed; run: pip install --no-deps spandrel==0.4.2 "
                    "spandrel-extra-arches==0.2.0 einops"
                ) from exc
            spandrel = _import_with_stand_ins()
        except (ImportError, RuntimeError, OSError):  # a torchvision that cannot load next to this torch
            spandrel = _import_with_stand_ins()
        _install_extra_arches()
        return spandrel


def _import_with_stand_ins() -> types.ModuleType:
    # a torchvision kept away at start (modules.sumi.util.package_guard) stays blocked afterwards
    blocked = "torchvision" in sys.modules and sys.modules["torchvision"] is None
    _forget(("torchvision", "spandrel"))
    sys.modules.update(_stand_in_modules())
    try:
        import spandrel
    finally:
        _forget(("torchvision",))
        if blocked:
            sys.modules["torchvision"] = None  # type: ignore[assignment]
    return spandrel


def _install_extra_arches() -> None:
    try:
        import spandrel_extra_arches
    except ImportError:
        return
    if not getattr(_install_extra_arches, "done", False):
        spandrel_extra_arches.install(ignore_duplicates=True)
        _install_extra_arches.done = True  # type: ignore[attr-defined]


def read_weights(path: str | Path, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of an upscaler/restorer file (safetensors, or a pickle read with weights_only),
    unwrapped from the containers people save them in (`params_ema`, `params`, `state_dict`, ...)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        data: Any = read_pickle(path, allow_unsafe_pickle)
    else:
        data = read_state_dict(path)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: not a model file (holds a {type(data).__name__}, not tensors)")
    state = import_spandrel().canonicalize_state_dict(data)
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path}: no weights found in the file")
    return tensors


def load_model(path: str | Path, *, allow_unsafe_pickle: bool = False) -> Any:
    """A spandrel `ModelDescriptor` (`.model`, `.scale`, `.architecture`, `.purpose`, ...) in eval
    mode on the CPU; a file spandrel does not recognise is a ModelLoadError naming it."""
    spandrel = import_spandrel()
    tensors = read_weights(path, allow_unsafe_pickle=allow_unsafe_pickle)
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(tensors)
    except spandrel.UnsupportedModelError as exc:
        raise ModelLoadError(
            f"{path}: not an architecture spandrel knows (ESRGAN, RealESRGAN, SwinIR, DAT, HAT, GFPGAN, "
            f"CodeFormer, LaMa, ...); it has keys such as {', '.join(list(tensors)[:5])}"
        ) from exc
    except (RuntimeError, KeyError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"{path}: the weights do not fit the detected architecture: {exc}") from exc
    return descriptor.eval()
