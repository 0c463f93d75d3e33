"""Reading model files safely and checking that every weight is accounted for.

- `.safetensors` is read with safetensors; `.ckpt`/`.pt`/`.pth`/`.bin` only with
  `torch.load(weights_only=True)`. A pickle that needs anything else is refused with
  `UnsafeFileError`; `--disable-safe-unpickle` (`allow_unsafe_pickle=True`) is the only way around it.
- Every failure names the file and what is wrong: a user sees "truncated download", never a
  traceback from deep inside torch later.
- `check_keys`, `check_shapes`, `check_finite`/`check_weights` and `load_weights` are what every
  loader (checkpoints, VAEs, ControlNets, networks) uses to prove a file fits its model before anything
  is built.
"""

from __future__ import annotations

import math
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch
from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError, UnsafeFileError

if TYPE_CHECKING:
    from diffusers import ConfigMixin

StateDict = dict[str, Tensor]
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)
ConfigT = TypeVar("ConfigT", bound="ConfigMixin")


SAFETENSORS_SUFFIXES = (".safetensors",)


PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


MAX_NAMED_KEYS = 10


def read_state_dict(path: str | Path, *, allow_unsafe_pickle: bool = False) -> StateDict:
    """All tensors of a model file, on the CPU, in the dtype they were saved in.

    A top-level `{"state_dict": {...}}`, `{"model": {...}}` or `{"depth_model": {...}}` wrapper is
    unwrapped; non-tensor entries
    (epoch counters, training metadata) are dropped.
    """
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        data = _read_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        data = read_pickle(path, allow_unsafe_pickle)
    else:
        supported = ", ".join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)
        raise ModelLoadError(
            f"{path}: unsupported model file type {suffix or '(none)'}; use one of {supported}"
        )
    return _tensors_only(data, path)


def _check_readable(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: the file is empty (0 bytes); the download or copy did not finish")


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, OSError, ... all mean "not a usable file"
        raise ModelLoadError(
            f"{path}: not a valid .safetensors file ({exc}); it may be truncated (an incomplete "
            "download) or corrupt"
        ) from exc


_FORBIDDEN_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class _LightningCheckpointCallback:
    """Stand-in for pytorch_lightning's ModelCheckpoint class, which the original SD 1.x .ckpt
    files name in their training-callback state; the class is never called, only referenced."""


def _harmless_globals() -> list:
    """Globals beyond torch's weights-only defaults that released SD .ckpt files contain and that
    cannot run code (the same allow-list idea as A1111's safe unpickler)."""
    import numpy as np

    # numpy 2 renamed `core` to `_core`; the stubs of the deprecated `numpy.core` omit `multiarray`
    core: Any = getattr(np, "_core", None) or np.core
    dtype_classes = {type(np.dtype(code)) for code in "?bhilqBHILQefd"}
    return [
        (_LightningCheckpointCallback, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        core.multiarray.scalar,
        np.dtype,
        *dtype_classes,
    ]


def read_pickle(path: Path, allow_unsafe: bool) -> object:
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_harmless_globals()):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_globals(path, exc) if "Weights only load failed" in str(exc) else None
        if refused is None:
            raise _corrupt_pickle(path, exc) from exc
        if not allow_unsafe:
            raise _unsafe_pickle(path, refused) from exc
    except Exception as exc:
        raise _corrupt_pickle(path, exc) from exc
    return _read_pickle_unsafely(path)


def _read_pickle_unsafely(path: Path) -> object:
    """Only reached with --disable-safe-unpickle: the user accepted that the file may run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise _corrupt_pickle(path, exc) from exc


def _unsafe_pickle(path: Path, names: list[str]) -> UnsafeFileError:
    what = f"the forbidden global {', '.join(names)}" if names else "objects that are not plain weights"
    return UnsafeFileError(
        f"{path}: refused to load this pickle file because it contains {what}, which could run code "
        "on this computer. Prefer a .safetensors version of the model. If you trust the file, "
        "--disable-safe-unpickle is the only way to load it."
    )


_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}


_HARMLESS_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode")


def _refused_globals(path: Path, exc: Exception) -> list[str] | None:
    """Why the weights-only loader refused a file: the globals it imports ([] if unknown), or
    None when the file is not even a well-formed pickle (corrupt, not unsafe).

    torch names the global itself for protocol-2 pickles; for newer protocols it stops at the
    first unsupported opcode, so the opcodes are read here (never executed) to find them.
    """
    named = _FORBIDDEN_GLOBAL.search(str(exc))
    if named:
        return [named[1]]
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                member = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                with archive.open(member) as stream:
                    found = _pickle_globals(stream)
        else:
            with path.open("rb") as stream:
                found = _pickle_globals(stream)
    except Exception:  # not a well-formed pickle
        return None
    return found


def _pickle_globals(stream) -> list[str]:
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    memo_size = 0
    last_string = False
    for op, arg, _ in pickletools.genops(stream):
        name = op.name
        if name == "GLOBAL":
            found.append(str(arg).replace(" ", "."))
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            found.append(f"{strings[-2]}.{strings[-1]}")
        elif name in _STRING_OPS:
            strings.append(str(arg))
        elif name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
            strings.append(memo[arg])
        elif name == "MEMOIZE":
            if last_string:
                memo[memo_size] = strings[-1]
            memo_size += 1
        last_string = name in _STRING_OPS or (name in ("BINGET", "LONG_BINGET", "GET") and arg in memo)
    return sorted({g for g in found if not g.startswith(_HARMLESS_GLOBALS)})


def _corrupt_pickle(path: Path, exc: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_short_reason(exc)}); "
        "it may be truncated (an incomplete download), corrupt, or not a model file"
    )


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _short_reason(exc: Exception) -> str:
    """The informative line of an exception message (torch's weights-only errors are long)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (useful or lines or [repr(exc)])[0][:200]


def _tensors_only(data: object, path: Path) -> StateDict:
    for wrapper in ("state_dict", "model", "depth_model"):  # LDM/A1111 .ckpt; normal_bae's, LeReS's
        if isinstance(data, Mapping) and isinstance(data.get(wrapper), Mapping):
            data = data[wrapper]
            break
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"{path}: holds a {type(data).__name__}, not a dictionary of weights")
    data = flat_parts(data)
    tensors = {str(k): v for k, v in data.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path}: contains no weights (no tensors found)")
    return tensors


# Files saved as {part: {name: tensor}} (IP-Adapter .bin: image_proj, ip_adapter), read as "part.name".
_NESTED_PARTS = ("image_proj", "ip_adapter")


def flat_parts(data: Mapping) -> Mapping:
    if not any(isinstance(data.get(part), Mapping) for part in _NESTED_PARTS):
        return data
    flat = dict(data)
    for part in _NESTED_PARTS:
        inner = flat.pop(part, None)
        if isinstance(inner, Mapping):
            flat.update({f"{part}.{k}": v for k, v in inner.items()})
    return flat


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a .safetensors header ({} for other formats or none)."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        return {}
    _check_readable(path)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a valid .safetensors file ({exc})") from exc


def _some(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_NAMED_KEYS])
    return shown + (f", ... ({len(keys) - MAX_NAMED_KEYS} more)" if len(keys) > MAX_NAMED_KEYS else "")


def check_keys(expected: set[str], got: set[str], what: str, path: str | Path) -> None:
    """Raise ModelLoadError naming (up to ten of) the missing and unexpected keys, with counts."""
    missing, unexpected = expected - got, got - expected
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {_some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {_some(unexpected)}")
    raise ModelLoadError(f"{path}: the {what} weights do not match the model; " + "; ".join(parts))


def _range(value: Tensor) -> tuple[float, float]:
    """(min, max) in one pass; NaN anywhere makes both NaN. `isfinite(t).all()` costs ~30x more."""
    try:
        low, high = torch.aminmax(value.detach())
    except RuntimeError:  # dtypes aminmax lacks (float8): widen first
        low, high = torch.aminmax(value.detach().float())
    return float(low), float(high)


def weight_problem(value: Tensor, dtype: torch.dtype | None = None) -> str | None:
    """Why a floating-point tensor cannot be used, or None: it holds NaN or infinity, or values
    beyond the range of `dtype` (the dtype it will be cast to), which would become infinite there."""
    if not value.is_floating_point() or value.numel() == 0 or value.is_meta:  # meta: shapes only
        return None
    low, high = _range(value)
    if math.isnan(low) or math.isnan(high):
        return "holds NaN values"
    if math.isinf(low) or math.isinf(high):
        return "holds infinite values"
    limit = torch.finfo(dtype).max if dtype is not None and dtype.is_floating_point else math.inf
    if max(-low, high) > limit:
        name = str(dtype).removeprefix("torch.")
        return f"holds values up to {max(-low, high):.3g}, more than {name} can hold ({limit:.6g})"
    return None


def non_finite_keys(tensors: Mapping[str, object]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (a damaged or badly trained file)."""
    return [
        str(key)
        for key, value in tensors.items()
        if isinstance(value, Tensor) and weight_problem(value) is not None
    ]


def check_finite(tensors: Mapping[str, object], path: str | Path, what: str) -> None:
    """Raise ModelLoadError when any tensor holds NaN/inf: applying it would turn every image black."""
    bad = non_finite_keys(tensors)
    if bad:
        raise ModelLoadError(
            f"{path}: {len(bad)} {what} tensor{'s' if len(bad) > 1 else ''} hold NaN or infinite values "
            f"({_some(bad)}); the file is damaged, so it is not used"
        )


def check_weights(
    tensors: Mapping[str, Tensor], what: str, path: str | Path, dtype: torch.dtype | None = None
) -> None:
    """Raise ModelLoadError naming the first tensor that holds NaN or infinity, or that would overflow
    when cast to `dtype`: a model built from it draws only black images. One min/max pass per tensor
    (about 0.1 s for SD1.5's 1.07 billion weights on two CPU cores, see docs/performance.md)."""
    for key, value in tensors.items():
        problem = weight_problem(value, dtype)
        if problem is None:
            continue
        if "NaN" in problem or "infinite" in problem:
            advice = "the file is damaged (every image would be black), so it is not loaded"
        else:
            advice = "every image would be black in that precision; load it in 32-bit floats (--no-half)"
        raise ModelLoadError(f"{path}: the {what} tensor {key} {problem}; {advice}")


def _squeezed(shape: torch.Size) -> tuple[int, ...]:
    """Shape without trailing 1s, so a 1x1 conv and a linear layer compare equal."""
    dims = list(shape)
    while dims and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def check_shapes(
    expected: Mapping[str, Tensor], got: Mapping[str, Tensor], what: str, path: str | Path
) -> None:
    """Raise ModelLoadError naming the keys whose shapes differ (keys present in both)."""
    wrong = [
        f"{k} {tuple(got[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in got and _squeezed(got[k].shape) != _squeezed(v.shape)
    ]
    if wrong:
        raise ModelLoadError(
            f"{path}: {len(wrong)} {what} weights have the wrong shape: " + ", ".join(wrong[:MAX_NAMED_KEYS])
        )


def from_config(cls: type[ConfigT], config: dict[str, Any]) -> ConfigT:
    """`cls.from_config(config)`: diffusers declares `Self | tuple[Self, dict]`, but the tuple only
    comes with `return_unused_kwargs=True`."""
    return cast(ConfigT, cls.from_config(config))


def load_weights(
    module: ModuleT, state_dict: Mapping[str, Tensor], what: str, path: str | Path, dtype: torch.dtype
) -> ModuleT:
    """Fill `module` (usually built on the meta device) strictly from `state_dict`, cast to `dtype`.

    Keys and shapes are checked first so a mismatch is a ModelLoadError naming the keys.
    The module is returned in eval mode without gradients.
    """
    expected = module.state_dict()
    check_keys(set(expected), set(state_dict), what, path)
    check_shapes(expected, state_dict, what, path)
    converted = {k: _cast(v, dtype).reshape(expected[k].shape) for k, v in state_dict.items()}
    module.load_state_dict(converted, strict=True, assign=True)
    _materialize_buffers(module, what, path)
    cast_module(module, dtype)  # floating buffers outside the state dict follow the weights
    return module.eval().requires_grad_(False)


def _materialize_buffers(module: torch.nn.Module, what: str, path: str | Path) -> None:
    """Buffers that no file stores (CLIP's `position_ids`) are still on the meta device: rebuild them."""
    for name, buffer in list(module.named_buffers()):
        if not buffer.is_meta:
            continue
        if not name.endswith("position_ids"):
            raise ModelLoadError(f"{path}: {what} buffer {name} is not in the file and cannot be rebuilt")
        owner = module.get_submodule(name.rpartition(".")[0])
        value = torch.arange(buffer.shape[-1]).expand(buffer.shape).clone()
        owner.register_buffer(name.rpartition(".")[2], value, persistent=False)


def cast_module(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`module.to(dtype)` without diffusers' ModelMixin.to warning about keep-in-fp32 modules."""
    return torch.nn.Module.to(module, dtype=dtype)


def _cast(value: Tensor, dtype: torch.dtype) -> Tensor:
    """A fresh, contiguous copy: safetensors tensors are views of the memory-mapped file, unaligned
    (slower CPU kernels, not bit-identical results) and tied to a file that may be overwritten."""
    target = dtype if value.is_floating_point() else value.dtype
    return value.to(dtype=target, memory_format=torch.contiguous_format, copy=True)
