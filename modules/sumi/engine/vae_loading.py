"""Standalone VAE files (A1111 `models/VAE`): read, swap into a loaded model, restore the baked one.

Accepted layouts:
- LDM (what A1111 users download, e.g. vae-ft-mse-840000-ema-pruned): `encoder.*`, `decoder.*`,
  `quant_conv.*`, `post_quant_conv.*`, optionally under `first_stage_model.` (a whole checkpoint
  works too: only its VAE is taken). Training leftovers `loss.*` and `model_ema.decay` /
  `model_ema.num_updates` are dropped, as A1111 does.
- diffusers (`encoder.down_blocks.*`, e.g. sdxl-vae/diffusion_pytorch_model.safetensors),
  including the pre-0.14 attention names (query/key/value/proj_attn).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families.base import VAE_PREFIX, build_vae, infer_vae_config, strip_prefix
from modules.sumi.engine.files import check_keys, check_shapes, check_weights, read_state_dict
from modules.sumi.engine.model import SDModel

StateDict = dict[str, Tensor]
_DROPPED_KEYS = ("model_ema.decay", "model_ema.num_updates")
_OLD_DIFFUSERS_ATTENTION = {
    ".query.": ".to_q.",
    ".key.": ".to_k.",
    ".value.": ".to_v.",
    ".proj_attn.": ".to_out.0.",
}


def load_vae_file(path: str | Path, allow_unsafe_pickle: bool = False) -> StateDict:
    """A VAE file as a diffusers-layout AutoencoderKL state dict (tensors in the file's dtype)."""
    path = Path(path)
    sd = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    sd = {k: v for k, v in sd.items() if not k.startswith("loss") and k not in _DROPPED_KEYS}
    if any(k.startswith(VAE_PREFIX) for k in sd):
        sd = strip_prefix(sd, VAE_PREFIX)
    if "encoder.down_blocks.0.resnets.0.conv1.weight" in sd:
        check_weights(sd, "VAE", path)
        return _modern_diffusers_names(sd)
    if "encoder.down.0.block.0.conv1.weight" in sd:
        return _ldm_to_diffusers(sd, path)  # build_vae checks the weights
    raise ModelLoadError(
        f"{path}: not a VAE: expected LDM keys (encoder.down.*, decoder.up.*, quant_conv.*) or diffusers "
        f"keys (encoder.down_blocks.*); found e.g. {', '.join(sorted(sd)[:5])}"
    )


def _ldm_to_diffusers(sd: StateDict, path: Path) -> StateDict:
    """Convert through a VAE built from the file's own shapes, so missing or stray keys are named."""
    dtype = next((v.dtype for v in sd.values() if v.is_floating_point()), torch.float32)
    config = infer_vae_config(sd, str(path), scaling_factor=0.18215, sample_size=512)
    vae = build_vae(sd, config, str(path), dtype, prefix="")
    return dict(vae.state_dict())


def _modern_diffusers_names(sd: StateDict) -> StateDict:
    out = {}
    for key, value in sd.items():
        if ".mid_block.attentions." in key:
            for old, new in _OLD_DIFFUSERS_ATTENTION.items():
                key = key.replace(old, new)
            if key.endswith("weight") and value.ndim == 4:
                value = value[:, :, 0, 0]
        out[key] = value
    return out


def apply_vae(model: SDModel, vae_sd: Mapping[str, Tensor], source: str = "") -> None:
    """Copy a diffusers-layout VAE state dict into `model.vae` in place (keeps its device and dtype).

    Raises ModelLoadError naming the keys when the VAE does not fit (e.g. an SDXL VAE on SD1 is fine
    by shape, but a VAE with other latent channels or widths is not).
    """
    what = f"VAE{f' from {source}' if source else ''}"
    expected = model.vae.state_dict()
    label = source or f"{model.source or model.family} (VAE)"
    check_keys(set(expected), set(vae_sd), what, label)
    check_shapes(expected, vae_sd, what, label)
    fitted = {k: v.reshape(expected[k].shape) for k, v in vae_sd.items()}
    with torch.no_grad():
        model.vae.load_state_dict(fitted, strict=True)


def baked_vae_state(model: SDModel) -> StateDict:
    """A CPU copy of the model's current VAE weights, to restore with `apply_vae` later."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.vae.state_dict().items()}
