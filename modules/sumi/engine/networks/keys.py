"""Every name a network file may use for a model layer -> that live layer.

The index is built from the live model, never from a table of real-model names, so it fits any
block count (the tiny test models included). For each Linear / Conv2d / LayerNorm / GroupNorm:

UNet (`diffusers path` = e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`)
  - kohya, diffusers paths:   `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q`
  - kohya, LDM/SGM paths:     `lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q` (SDXL)
  - diffusers / PEFT dotted:  `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`
Text encoders (HF CLIP path `text_model.encoder.layers.0.self_attn.q_proj`)
  - kohya: `lora_te_text_model_encoder_layers_0_self_attn_q_proj` (SD1/SD2), SDXL `lora_te1_` / `lora_te2_`
  - diffusers / PEFT dotted: `text_encoder.text_model...`, SDXL second encoder `text_encoder_2.`
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..ldm_export import unet_key
from ..model import SDModel
from ..unet_blocks import diffusers_block

PATCHABLE = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.GroupNorm)


@dataclass(frozen=True)
class Target:
    """One patchable layer: `component` is "unet" or "te0"/"te1" (text encoder index), `name` its path."""

    component: str
    name: str
    module: torch.nn.Module

    @property
    def key(self) -> str:
        return f"{self.component}:{self.name}"

    @property
    def is_text_encoder(self) -> bool:
        return self.component.startswith("te")


def _unet_names(name: str, layers_per_block: int, up_attention: list[bool]) -> list[str]:
    names = ["lora_unet_" + name.replace(".", "_"), "unet." + name]
    try:
        ldm = unet_key(name + ".weight", layers_per_block, up_attention).removesuffix(".weight")
    except ValueError:
        return names
    return [*names, "lora_unet_" + ldm.replace(".", "_")]


def _text_names(name: str, index: int, count: int) -> list[str]:
    path = "text_model." + name.removeprefix("text_model.")
    kohya = ["lora_te_"] if count == 1 else [f"lora_te{index + 1}_"]
    dotted = "text_encoder" if index == 0 else f"text_encoder_{index + 1}"
    names = [prefix + path.replace(".", "_") for prefix in kohya]
    return [*names, f"{dotted}.{path}", f"{dotted}.{path.removeprefix('text_model.')}"]


def kohya_name(model: SDModel, component: str, name: str) -> str:
    """The layer name kohya's sd-scripts (and LyCORIS) write for live layer `name` of `component`
    ("unet", "te0", "te1"): SD1/SD2 UNet diffusers paths, SDXL UNet LDM/SGM paths, text encoders
    `lora_te_` (one encoder) or `lora_te1_` / `lora_te2_` (SDXL). Trainers save under these names."""
    if component == "unet":
        if not model.is_sdxl:
            return "lora_unet_" + name.replace(".", "_")
        unet = model.unet
        up_attention = ["CrossAttn" in t for t in unet.config["up_block_types"]]
        ldm = unet_key(name + ".weight", int(unet.config["layers_per_block"]), up_attention)
        return "lora_unet_" + ldm.removesuffix(".weight").replace(".", "_")
    index, count = int(component.removeprefix("te")), len(model.text_encoders)
    prefix = "lora_te_" if count == 1 else f"lora_te{index + 1}_"
    return prefix + ("text_model." + name.removeprefix("text_model.")).replace(".", "_")


def build_index(model: SDModel) -> dict[str, Target]:
    """Map every network-file layer name to its Target in `model`."""
    index: dict[str, Target] = {}
    unet = model.unet
    layers = int(unet.config["layers_per_block"])
    up_attention = ["CrossAttn" in t for t in unet.config["up_block_types"]]
    for name, module in unet.named_modules():
        if isinstance(module, PATCHABLE):
            target = Target("unet", name, module)
            for alias in _unet_names(name, layers, up_attention):
                index.setdefault(alias, target)
    count = len(model.text_encoders)
    for i, spec in enumerate(model.text_encoders):
        for name, module in spec.model.named_modules():
            if isinstance(module, PATCHABLE):
                target = Target(f"te{i}", name, module)
                for alias in _text_names(name, i, count):
                    index.setdefault(alias, target)
    return index


def target_block(model: SDModel, target: Target) -> str | None:
    """The block-weight block of a layer: "BASE" for the text encoders, "IN04" / "M00" / "OUT11" for the
    UNet's blocks, None for UNet layers outside them."""
    if target.is_text_encoder:
        return "BASE"
    config = model.unet.config
    up_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    return diffusers_block(target.name, int(config["layers_per_block"]), up_attention)


def a1111_layer_name(model: SDModel, target: Target) -> str:
    """The layer's name as A1111's networks call it, which element weights match parts of: the LDM key
    with underscores (`diffusion_model_input_blocks_4_1_transformer_blocks_0_attn1_to_q`), or for a text
    encoder its CLIP path under `transformer_` (`transformer_text_model_encoder_layers_0_self_attn_q_proj`,
    SDXL's second encoder prefixed `1_`)."""
    if target.is_text_encoder:
        index = int(target.component.removeprefix("te") or 0)
        prefix = f"{index}_" if len(model.text_encoders) > 1 else ""
        path = target.name if target.name.startswith("text_model.") else f"text_model.{target.name}"
        return f"{prefix}transformer_{path.replace('.', '_')}"
    config = model.unet.config
    up_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    try:
        ldm = unet_key(target.name + ".weight", int(config["layers_per_block"]), up_attention)
    except ValueError:
        return f"diffusion_model_{target.name.replace('.', '_')}"
    return "diffusion_model_" + ldm.removesuffix(".weight").replace(".", "_")
