"""The A1111/LDM single-file checkpoint layout: key normalisation (old CLIP prefixes, EMA-only files,
SD2-turbo names), the parts generation never uses, and the hints a `<stem>.yaml` or safetensors
metadata give about a checkpoint's family and prediction type."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import StateDict, read_safetensors_metadata

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


_OLD_CLIP_PREFIX = "cond_stage_model.transformer."


_OLD_CLIP_PARTS = ("embeddings.", "encoder.", "final_layer_norm.")


_EMA_PREFIX = "model_ema."


_UNET_PREFIX = "model.diffusion_model."


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
            match = re.match(r"\d+", flat[pos:])
            assert match is not None  # flat[pos] is a digit
            digits = match[0]
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


def metadata_prediction_type(path: Path) -> str | None:
    """SAI model-spec metadata (`modelspec.prediction_type`: "epsilon" or "v")."""
    value = read_safetensors_metadata(path).get("modelspec.prediction_type", "")
    return {"v": "v_prediction", "v_prediction": "v_prediction", "epsilon": "epsilon"}.get(
        value.strip().lower()
    )
