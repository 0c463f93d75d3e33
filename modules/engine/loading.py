"""Reading model files safely and checking that every weight is accounted for.

- `.safetensors` is read with safetensors; `.ckpt`/`.pt`/`.pth`/`.bin` only with
  `torch.load(weights_only=True)`. A pickle that needs anything else is refused with
  `UnsafeFileError`; `--disable-safe-unpickle` (`allow_unsafe_pickle=True`) is the only way around it.
- Every failure names the file and what is wrong: a user sees "truncated download", never a
  traceback from deep inside torch later.
- `load_checkpoint` is the entry point for whole A1111 checkpoints; the per-family work lives in
  `modules.engine.families`.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from modules.engine.errors import ModelLoadError, UnsafeFileError

if TYPE_CHECKING:
    from modules.engine.model import SDModel

StateDict = dict[str, Tensor]

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# Buffers of the LDM/SGM training wrapper: the noise schedule is rebuilt from the scheduler config.
SCHEDULE_BUFFERS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
        "logvar",
        "lvlb_weights",
    }
)
# Whole sub-trees a checkpoint may carry that generation never uses: the EMA copy of the UNet
# (A1111 uses the non-EMA `model.diffusion_model` weights) and SGM's denoiser sigma tables.
IGNORED_PREFIXES = ("model_ema.", "denoiser.")

MAX_NAMED_KEYS = 10
_OLD_CLIP_PREFIX = "cond_stage_model.transformer."
_OLD_CLIP_PARTS = ("embeddings.", "encoder.", "final_layer_norm.")
_EMA_PREFIX = "model_ema."
_UNET_PREFIX = "model.diffusion_model."


# -- reading files -------------------------------------------------------------------------------


def read_state_dict(path: str | Path, *, allow_unsafe_pickle: bool = False) -> StateDict:
    """All tensors of a model file, on the CPU, in the dtype they were saved in.

    A top-level `{"state_dict": {...}}` wrapper (LDM/A1111 .ckpt) is unwrapped; non-tensor entries
    (epoch counters, training metadata) are dropped.
    """
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        data = _read_safetensors(path)
    elif suffix in PICKLE_SUFFIXES:
        data = _read_pickle(path, allow_unsafe_pickle)
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

    core = getattr(np, "_core", None) or np.core
    dtype_classes = {type(np.dtype(code)) for code in "?bhilqBHILQefd"}
    return [
        (_LightningCheckpointCallback, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
        (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
        core.multiarray.scalar,
        np.dtype,
        *dtype_classes,
    ]


def _read_pickle(path: Path, allow_unsafe: bool) -> object:
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
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise ModelLoadError(f"{path}: holds a {type(data).__name__}, not a dictionary of weights")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ModelLoadError(f"{path}: contains no weights (no tensors found)")
    return tensors


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


# -- checking keys --------------------------------------------------------------------------------


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


def non_finite_keys(tensors: Mapping[str, object]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity (a damaged or badly trained file)."""
    bad = []
    for key, value in tensors.items():
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(str(key))
    return bad


def check_finite(tensors: Mapping[str, object], path: str | Path, what: str) -> None:
    """Raise ModelLoadError when any tensor holds NaN/inf: applying it would turn every image black."""
    bad = non_finite_keys(tensors)
    if bad:
        raise ModelLoadError(
            f"{path}: {len(bad)} {what} tensor{'s' if len(bad) > 1 else ''} hold NaN or infinite values "
            f"({_some(bad)}); the file is damaged, so it is not used"
        )


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


def load_weights(
    module: torch.nn.Module, state_dict: Mapping[str, Tensor], what: str, path: str | Path, dtype: torch.dtype
) -> torch.nn.Module:
    """Fill `module` (usually built on the meta device) strictly from `state_dict`, cast to `dtype`.

    Keys and shapes are checked first so a mismatch is a ModelLoadError naming the keys.
    The module is returned in eval mode without gradients.
    """
    expected = module.state_dict()
    check_keys(set(expected), set(state_dict), what, path)
    check_shapes(expected, state_dict, what, path)
    cast = {k: _cast(v, dtype).reshape(expected[k].shape) for k, v in state_dict.items()}
    module.load_state_dict(cast, strict=True, assign=True)
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


# -- key fix-ups ------------------------------------------------------------------------------------


def normalize_checkpoint_keys(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Rename the older layouts A1111 also accepts to the current one.

    - SD1 files whose CLIP keys lack `text_model.` (old transformers) get it inserted.
    - SD2-Turbo (SGM layout, 1024-wide `conditioner.embedders.0.model`) becomes `cond_stage_model.`.
    - A file holding only the EMA UNet (`model_ema.diffusion_model...`, dots removed) gets it
      restored as `model.diffusion_model.*`.
    """
    out = dict(state_dict)
    out = _insert_text_model(out)
    out = _rename_sd2_turbo(out)
    return _restore_ema_only(out)


def _insert_text_model(sd: StateDict) -> StateDict:
    fixed = {}
    for key, value in sd.items():
        rest = key.removeprefix(_OLD_CLIP_PREFIX)
        if rest != key and rest.startswith(_OLD_CLIP_PARTS):
            key = f"{_OLD_CLIP_PREFIX}text_model.{rest}"
        fixed[key] = value
    return fixed


def _rename_sd2_turbo(sd: StateDict) -> StateDict:
    ln_final = sd.get("conditioner.embedders.0.model.ln_final.weight")
    if (
        ln_final is None
        or ln_final.shape[0] != 1024
        or any(k.startswith("conditioner.embedders.1.") for k in sd)
    ):
        return sd
    return {
        (
            "cond_stage_model." + k.removeprefix("conditioner.embedders.0.")
            if k.startswith("conditioner.embedders.0.")
            else k
        ): v
        for k, v in sd.items()
    }


def _restore_ema_only(sd: StateDict) -> StateDict:
    if any(k.startswith(_UNET_PREFIX) for k in sd):
        return sd
    flat = [k for k in sd if k.startswith(_EMA_PREFIX + "diffusion_model")]
    if not flat:
        return sd
    out = {k: v for k, v in sd.items() if not k.startswith(_EMA_PREFIX)}
    for key in flat:
        out["model." + unflatten_ema_key(key.removeprefix(_EMA_PREFIX))] = sd[key]
    return out


# Names that occur in LDM UNet keys; the EMA copy removes the dots between them.
_LDM_UNET_NAMES = (
    "diffusion_model time_embed label_emb input_blocks middle_block output_blocks out in_layers "
    "emb_layers out_layers skip_connection op conv norm norm1 norm2 norm3 proj_in proj_out "
    "transformer_blocks attn1 attn2 to_q to_k to_v to_out ff net proj weight bias"
)
_LDM_UNET_WORDS = sorted(_LDM_UNET_NAMES.split(), key=len, reverse=True)


def unflatten_ema_key(flat: str) -> str:
    """'diffusion_modelinput_blocks110weight' -> 'diffusion_model.input_blocks.11.0.weight'.

    LitEma drops the dots. Words are matched longest first; a digit run after `input_blocks` /
    `output_blocks` is "block index + one-digit slot", after `label_emb` one digit per level.
    """
    parts: list[str] = []
    pos = 0
    while pos < len(flat):
        if flat[pos].isdigit():
            digits = re.match(r"\d+", flat[pos:])[0]
            parts.extend(_split_digits(parts[-1] if parts else "", digits))
            pos += len(digits)
            continue
        word = next((w for w in _LDM_UNET_WORDS if flat.startswith(w, pos)), None)
        if word is None:
            raise ModelLoadError(f"cannot restore the EMA weight name {_EMA_PREFIX}{flat}")
        parts.append(word)
        pos += len(word)
    return ".".join(parts)


def _split_digits(previous: str, digits: str) -> list[str]:
    if previous in ("input_blocks", "output_blocks") and len(digits) > 1:
        return [str(int(digits[:-1])), digits[-1]]
    if previous == "label_emb":
        return list(digits)
    return [digits]


# -- config yaml ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigHints:
    """What an A1111 `<checkpoint>.yaml` (LDM/SGM config) says beyond the weights.

    Every field is None when the yaml does not say; the loader then uses the family rule.
    """

    family: str | None = None
    prediction_type: str | None = None
    in_channels: int | None = None
    num_heads: int | None = None
    num_head_channels: int | None = None
    vae_scaling_factor: float | None = None
    source: str = ""


def read_config_yaml(path: str | Path) -> ConfigHints:
    """Parse an LDM/SGM inference yaml into ConfigHints (ModelLoadError if it is not one)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        params = data["model"]["params"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: not an LDM model config (expected model.params): {exc}") from exc
    if not isinstance(params, Mapping):
        raise ModelLoadError(f"{path}: not an LDM model config (model.params is not a mapping)")
    unet = _unet_params(params)
    return ConfigHints(
        family=_yaml_family(params, unet),
        prediction_type="v_prediction" if params.get("parameterization") == "v" else "epsilon",
        in_channels=unet.get("in_channels"),
        num_heads=_positive(unet.get("num_heads"))
        if _positive(unet.get("num_head_channels")) is None
        else None,
        num_head_channels=_positive(unet.get("num_head_channels")),
        vae_scaling_factor=params.get("scale_factor"),
        source=str(path),
    )


def _unet_params(params: Mapping) -> Mapping:
    for name in ("unet_config", "network_config"):
        section = params.get(name)
        if isinstance(section, Mapping):
            return section.get("params") or {}
    return {}


def _positive(value) -> int | None:
    return int(value) if isinstance(value, int) and value > 0 else None


def _yaml_family(params: Mapping, unet: Mapping) -> str | None:
    if "network_config" in params:
        return "SDXL"
    target = str((params.get("cond_stage_config") or {}).get("target", ""))
    if "OpenCLIP" in target or unet.get("context_dim") == 1024:
        return "SD2"
    if "FrozenCLIPEmbedder" in target or unet.get("context_dim") == 768:
        return "SD1"
    return None


def _metadata_prediction_type(path: Path) -> str | None:
    """SAI model-spec metadata (`modelspec.prediction_type`: "epsilon" or "v")."""
    value = read_safetensors_metadata(path).get("modelspec.prediction_type", "")
    return {"v": "v_prediction", "v_prediction": "v_prediction", "epsilon": "epsilon"}.get(
        value.strip().lower()
    )


# -- the entry point --------------------------------------------------------------------------------


def load_checkpoint(
    path: str | Path,
    *,
    allow_unsafe_pickle: bool = False,
    config_yaml: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
    prediction_type: str | None = None,
) -> SDModel:
    """Load an A1111 single-file checkpoint (SD1, SD2, SDXL, inpainting) into an SDModel.

    `config_yaml` (default: `<stem>.yaml` beside the file, if any) overrides detection: family,
    v-prediction, in_channels and head counts. `prediction_type` ("epsilon"/"v_prediction"/"v")
    overrides everything. Raises ModelLoadError (or UnsafeFileError) for any problem.
    """
    # families builds on this module's helpers, so it is imported here, not at the top.
    from modules.engine.families import detect_family, get_family

    path = Path(path)
    state_dict = normalize_checkpoint_keys(read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle))
    hints = _hints_for(path, config_yaml)
    if hints.family:
        family = get_family(hints.family)
        if not family.matches(state_dict):
            detected = detect_family(state_dict, source=str(path)).name
            raise ModelLoadError(
                f"{hints.source} describes an {hints.family} model but {path} holds {detected} weights"
            )
    else:
        family = detect_family(state_dict, source=str(path))
    return family.build(
        state_dict,
        source=str(path),
        prediction_type=_normalize_prediction(prediction_type),
        dtype=dtype,
        hints=hints,
    )


def _hints_for(path: Path, config_yaml: str | Path | None) -> ConfigHints:
    """The yaml beside the checkpoint (or the one given) wins; else safetensors model-spec metadata."""
    yaml_path = Path(config_yaml) if config_yaml else path.with_suffix(".yaml")
    if config_yaml or yaml_path.is_file():
        return read_config_yaml(yaml_path)
    prediction = _metadata_prediction_type(path)
    return ConfigHints(prediction_type=prediction, source=f"{path} metadata" if prediction else "")


def _normalize_prediction(value: str | None) -> str | None:
    if value is None:
        return None
    aliases = {"v": "v_prediction", "v_prediction": "v_prediction", "eps": "epsilon", "epsilon": "epsilon"}
    if value not in aliases:
        raise ModelLoadError(f"unknown prediction type {value!r}; use 'epsilon' or 'v_prediction'")
    return aliases[value]
