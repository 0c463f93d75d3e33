"""diffusers/transformers modules -> A1111/LDM single-file checkpoint layout (the reverse of loading).

Works for any block count, layers per block and transformer depth: every key is computed from the
diffusers key and the model config, never from a table of real-model names. The component
functions take plain state dicts, so the loader also runs them on meta tensors to learn exactly
which keys (and shapes) a file must hold for the model it built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

StateDict = dict[str, Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_OPENCLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_CLIP_G_PREFIX = "conditioner.embedders.0.model."  # the refiner has only OpenCLIP bigG

_RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_ATTN_NAMES = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPENCLIP_LAYER_NAMES = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_OPENCLIP_FIXED = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
LOGIT_SCALE = math.log(1 / 0.07)  # open_clip's initial value; unused for generation


def _split_param(key: str) -> tuple[str, str]:
    """'a.b.weight' -> ('a.b', 'weight')."""
    module, _, param = key.rpartition(".")
    return module, param


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET_NAMES.get(head, head)}.{tail}"


def _config_value(config: Mapping | object, name: str):
    return config[name] if isinstance(config, Mapping) else getattr(config, name)


def unet_key(key: str, layers_per_block: int, up_has_attention: Sequence[bool]) -> str:
    """The LDM name (without prefix) of one diffusers UNet2DConditionModel key."""
    module, param = _split_param(key)
    if module in _UNET_FIXED:
        return f"{_UNET_FIXED[module]}.{param}"
    per_level = layers_per_block + 1
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = 1 + int(m[1]) * per_level + int(m[3])
        if m[2] == "resnets":
            return f"input_blocks.{index}.0.{_resnet(m[4])}"
        return f"input_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}"
    if m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
    if m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        index = int(m[1]) * per_level + int(m[3])
        if m[2] == "resnets":
            return f"output_blocks.{index}.0.{_resnet(m[4])}"
        return f"output_blocks.{index}.1.{m[4]}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        block = int(m[1])
        slot = 2 if up_has_attention[block] else 1
        return f"output_blocks.{block * per_level + layers_per_block}.{slot}.conv.{m[2]}"
    raise ValueError(f"no LDM name for UNet key {key!r}")


def unet_to_ldm(state_dict: Mapping[str, Tensor], config, prefix: str = UNET_PREFIX) -> StateDict:
    """A diffusers UNet state dict in LDM `model.diffusion_model.*` layout."""
    layers = int(_config_value(config, "layers_per_block"))
    up_attention = ["CrossAttn" in t for t in _config_value(config, "up_block_types")]
    return {prefix + unet_key(k, layers, up_attention): v for k, v in state_dict.items()}


CONTROLNET_PREFIX = "control_model."


def controlnet_key(key: str, layers_per_block: int, hint_convs: int) -> str:
    """The lllyasviel (cldm) name (without prefix) of one diffusers ControlNetModel key.

    `hint_convs` is the number of convolutions between the hint encoder's first and last
    (`controlnet_cond_embedding.blocks`): the last one is `input_hint_block.{2 * (hint_convs + 1)}`.
    """
    module, param = _split_param(key)
    if m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
        return f"zero_convs.{m[1]}.0.{param}"
    if m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
        return f"input_hint_block.{2 * (int(m[1]) + 1)}.{param}"
    fixed = {
        "controlnet_mid_block": "middle_block_out.0",
        "controlnet_cond_embedding.conv_in": "input_hint_block.0",
        "controlnet_cond_embedding.conv_out": f"input_hint_block.{2 * (hint_convs + 1)}",
    }
    if module in fixed:
        return f"{fixed[module]}.{param}"
    return unet_key(key, layers_per_block, ())


def controlnet_to_ldm(state_dict: Mapping[str, Tensor], config, prefix: str = CONTROLNET_PREFIX) -> StateDict:
    """A diffusers ControlNetModel state dict in lllyasviel layout (`control_model.*`, as in .pth files)."""
    layers = int(_config_value(config, "layers_per_block"))
    hint_convs = 2 * (len(_config_value(config, "conditioning_embedding_out_channels")) - 1)
    return {prefix + controlnet_key(k, layers, hint_convs): v for k, v in state_dict.items()}


def _vae_key(key: str, num_levels: int) -> str:
    """The LDM name (without prefix) of one diffusers AutoencoderKL key."""
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
        level = num_levels - 1 - int(m[1])
        return f"decoder.up.{level}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
        return f"decoder.up.{num_levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
    if m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
        return f"{m[1]}.mid.attn_1.{_VAE_ATTN_NAMES[m[2]]}.{m[3]}"
    if m := re.fullmatch(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
        return f"{m[1]}.norm_out.{m[2]}"
    if re.fullmatch(
        r"(encoder\.|decoder\.)?(conv_in|conv_out|quant_conv|post_quant_conv)\.(weight|bias)", key
    ):
        return key
    raise ValueError(f"no LDM name for VAE key {key!r}")


def vae_to_ldm(state_dict: Mapping[str, Tensor], config, prefix: str = VAE_PREFIX) -> StateDict:
    """A diffusers AutoencoderKL state dict in LDM layout (attention projections as 1x1 convs)."""
    levels = len(_config_value(config, "block_out_channels"))
    out = {}
    for key, value in state_dict.items():
        ldm = _vae_key(key, levels)
        if ".mid.attn_1." in ldm and ldm.endswith("weight") and value.ndim == 2:
            value = value.reshape(*value.shape, 1, 1)
        out[prefix + ldm] = value
    return out


def clip_to_ldm(state_dict: Mapping[str, Tensor], prefix: str = SD1_CLIP_PREFIX) -> StateDict:
    """A transformers CLIPTextModel state dict in the HF-CLIP layout LDM files use (`transformer.text_model.*`)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        if key == "text_projection.weight":
            raise ValueError("an OpenAI-CLIP layout text encoder has no projection in LDM files")
        out[prefix + ("" if key.startswith("text_model.") else "text_model.") + key] = value
    return out


def _openclip_layer_key(rest: str) -> str:
    for diffusers_name, openclip_name in _OPENCLIP_LAYER_NAMES.items():
        if rest.startswith(diffusers_name + "."):
            return openclip_name + rest[len(diffusers_name) :]
    raise ValueError(f"no OpenCLIP name for text encoder layer key {rest!r}")


def openclip_to_ldm(state_dict: Mapping[str, Tensor], prefix: str = SD2_OPENCLIP_PREFIX) -> StateDict:
    """A transformers CLIP text state dict in open_clip layout (fused `in_proj`, transposed projection)."""
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for full_key, value in state_dict.items():
        key = full_key.removeprefix("text_model.")
        if key.endswith("position_ids"):
            continue
        if key in _OPENCLIP_FIXED:
            out[prefix + _OPENCLIP_FIXED[key]] = value
        elif key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key):
            out[f"{prefix}transformer.resblocks.{m[1]}.{_openclip_layer_key(m[2])}"] = value
        else:
            raise ValueError(f"no OpenCLIP name for text encoder key {full_key!r}")
    for (layer, param), parts in qkv.items():
        fused = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = fused
    return out


def _identity_resblock(prefix: str, index: int, hidden: int, mlp: int, like: Tensor) -> StateDict:
    """An open_clip residual block whose weights are all zero: it passes its input through unchanged."""
    shapes = {
        "attn.in_proj_weight": (3 * hidden, hidden),
        "attn.in_proj_bias": (3 * hidden,),
        "attn.out_proj.weight": (hidden, hidden),
        "attn.out_proj.bias": (hidden,),
        "ln_1.weight": (hidden,),
        "ln_1.bias": (hidden,),
        "ln_2.weight": (hidden,),
        "ln_2.bias": (hidden,),
        "mlp.c_fc.weight": (mlp, hidden),
        "mlp.c_fc.bias": (mlp,),
        "mlp.c_proj.weight": (hidden, mlp),
        "mlp.c_proj.bias": (hidden,),
    }
    base = f"{prefix}transformer.resblocks.{index}."
    return {base + name: like.new_zeros(shape) for name, shape in shapes.items()}


def _sd2_text_encoder(model: torch.nn.Module) -> StateDict:
    """SD2's OpenCLIP-H in full open_clip form.

    The UNet only sees the penultimate OpenCLIP layer, so the diffusers encoder stops one block
    early and the last block, the projection and the logit scale are not part of the model. They
    are written as placeholders (an identity block, an identity projection) so the file has the
    complete open_clip layout that A1111 and ComfyUI expect; Sumi's loader ignores them.
    """
    out = openclip_to_ldm(model.state_dict(), SD2_OPENCLIP_PREFIX)
    config = model.config  # transformers' CLIPTextConfig
    like = out[SD2_OPENCLIP_PREFIX + "token_embedding.weight"]
    hidden, mlp = _config_value(config, "hidden_size"), _config_value(config, "intermediate_size")
    layers = _config_value(config, "num_hidden_layers")
    out.update(_identity_resblock(SD2_OPENCLIP_PREFIX, layers, hidden, mlp, like))
    out[SD2_OPENCLIP_PREFIX + "text_projection"] = torch.eye(hidden, dtype=like.dtype)
    out[SD2_OPENCLIP_PREFIX + "logit_scale"] = torch.tensor(LOGIT_SCALE, dtype=like.dtype)
    return out


def _sdxl_text_encoders(models: Sequence[torch.nn.Module]) -> StateDict:
    clip_l, clip_g = models
    out = clip_to_ldm(clip_l.state_dict(), SDXL_CLIP_L_PREFIX)
    out.update(openclip_to_ldm(clip_g.state_dict(), SDXL_CLIP_G_PREFIX))
    like = out[SDXL_CLIP_G_PREFIX + "token_embedding.weight"]
    out[SDXL_CLIP_G_PREFIX + "logit_scale"] = torch.tensor(LOGIT_SCALE, dtype=like.dtype)
    return out


def _sdxl_refiner_text_encoder(models: Sequence[torch.nn.Module]) -> StateDict:
    out = openclip_to_ldm(models[0].state_dict(), SDXL_REFINER_CLIP_G_PREFIX)
    like = out[SDXL_REFINER_CLIP_G_PREFIX + "token_embedding.weight"]
    out[SDXL_REFINER_CLIP_G_PREFIX + "logit_scale"] = torch.tensor(LOGIT_SCALE, dtype=like.dtype)
    return out


def _text_encoders(family: str, models: Sequence[torch.nn.Module]) -> StateDict:
    writers: dict[str, tuple[int, Callable[[Sequence[torch.nn.Module]], StateDict]]] = {
        "SD1": (1, lambda m: clip_to_ldm(m[0].state_dict(), SD1_CLIP_PREFIX)),
        "SD2": (1, lambda m: _sd2_text_encoder(m[0])),
        "SDXL": (2, _sdxl_text_encoders),
        "SDXL-refiner": (1, _sdxl_refiner_text_encoder),
    }
    if family not in writers:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(writers)}")
    count, write = writers[family]
    if len(models) != count:
        raise ValueError(f"{family} has {count} text encoder(s), got {len(models)}")
    return write(models)


def _module(item) -> torch.nn.Module:
    """Accept a module or a TextEncoderSpec-like object with a `.model`."""
    return item if isinstance(item, torch.nn.Module) else item.model


def to_single_file_state_dict(
    family: str,
    unet: torch.nn.Module,
    vae: torch.nn.Module,
    text_encoders: Sequence,
    *,
    dtype: torch.dtype | None = None,
    extra: Mapping[str, Tensor] | None = None,
) -> StateDict:
    """The A1111 single-file state dict ("SD1", "SD2", "SDXL" or "SDXL-refiner") of these components.

    `text_encoders` are modules (or TextEncoderSpec) in the family's order: SD1 [CLIP-L],
    SD2 [OpenCLIP-H as CLIPTextModel], SDXL [CLIP-L, bigG CLIPTextModelWithProjection].
    `dtype` casts floating point tensors; `extra` keys are added last (and win).
    """
    out = unet_to_ldm(unet.state_dict(), unet.config)
    out.update(vae_to_ldm(vae.state_dict(), vae.config))
    out.update(_text_encoders(family, [_module(t) for t in text_encoders]))
    out.update(extra or {})
    return {k: _prepare(v, dtype) for k, v in out.items()}


def _prepare(value: Tensor, dtype: torch.dtype | None) -> Tensor:
    value = value.detach()
    if dtype is not None and value.is_floating_point():
        value = value.to(dtype)
    return value.contiguous()


def _unshare(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Copy tensors that share storage with an earlier one (safetensors refuses shared tensors)."""
    seen: set[int] = set()
    out = {}
    for key, value in state_dict.items():
        value = value.contiguous()
        storage = value.untyped_storage().data_ptr()
        if value.numel() and storage in seen:
            value = value.clone()
            storage = value.untyped_storage().data_ptr()
        seen.add(storage)
        out[key] = value
    return out


def save_checkpoint(
    path: str | Path, state_dict: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None
):
    """Write a single-file checkpoint: `.safetensors` (with string metadata) or `.ckpt`/`.pt`/`.pth`.

    Pickled files hold `{"state_dict": ...}` like the original LDM checkpoints.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(_unshare(state_dict), str(path), metadata=dict(metadata or {}) or None)
    elif suffix in (".ckpt", ".pt", ".pth"):
        torch.save({"state_dict": dict(state_dict)}, path)
    else:
        raise ValueError(f"cannot save a checkpoint as {path.name}: use .safetensors or .ckpt")
    return path
