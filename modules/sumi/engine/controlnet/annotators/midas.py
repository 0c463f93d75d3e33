"""MiDaS v3 DPT-Hybrid (`midas/dpt_hybrid-midas-501f0c75.pt`, the file sd-webui-controlnet's
`depth_midas` and `normal_midas` use), run as transformers' `DPTForDepthEstimation`.

The file keeps the original's names: a ResNet-50 stem and three stages with weight-standardised
convolutions (`pretrained.model.patch_embed.backbone...`), a ViT-B/16 over its features
(`pretrained.model.blocks.N`, fused `qkv`), the readout projections and resampling convolutions of the
two transformer taps (`pretrained.act_postprocess3/4`), and the DPT decoder (`scratch.layerN_rn`,
`scratch.refinenet4..1`, `scratch.output_conv`). Those are renamed onto transformers' DPT-Hybrid (its
BiT backbone is the same network) and loaded strictly; the classifier head the file also carries is
left out. Sizes are read from the file.

The maps follow the extension: the picture scaled to the processor resolution and edge-padded, pixels
to -1..1, relative inverse depth normalised to 0..255 (near = white); normals from the depth's Sobel
gradients with z = 2π, flat where the normalised depth is under "Normal Background Threshold".
"""

from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

from modules.sumi.engine.controlnet.annotators.weights import load_network
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_state_dict

_VIT = "pretrained.model."
_BACKBONE = _VIT + "patch_embed.backbone."
_RENAMES = (  # (pattern on the file's name, transformers' name), first match wins
    (r"pretrained\.model\.cls_token", "dpt.embeddings.cls_token"),
    (r"pretrained\.model\.pos_embed", "dpt.embeddings.position_embeddings"),
    (r"pretrained\.model\.patch_embed\.proj\.(\w+)", r"dpt.embeddings.projection.\1"),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stem\.conv\.(\w+)",
        r"dpt.embeddings.backbone.bit.embedder.convolution.\1",
    ),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stem\.norm\.(\w+)",
        r"dpt.embeddings.backbone.bit.embedder.norm.\1",
    ),
    (
        r"pretrained\.model\.patch_embed\.backbone\.stages\.(\d+)\.blocks\.(\d+)\.(.+)",
        r"dpt.embeddings.backbone.bit.encoder.stages.\1.layers.\2.\3",
    ),
    (r"pretrained\.model\.blocks\.(\d+)\.norm1\.(\w+)", r"dpt.encoder.layer.\1.layernorm_before.\2"),
    (r"pretrained\.model\.blocks\.(\d+)\.norm2\.(\w+)", r"dpt.encoder.layer.\1.layernorm_after.\2"),
    (
        r"pretrained\.model\.blocks\.(\d+)\.attn\.proj\.(\w+)",
        r"dpt.encoder.layer.\1.attention.output.dense.\2",
    ),
    (r"pretrained\.model\.blocks\.(\d+)\.mlp\.fc1\.(\w+)", r"dpt.encoder.layer.\1.intermediate.dense.\2"),
    (r"pretrained\.model\.blocks\.(\d+)\.mlp\.fc2\.(\w+)", r"dpt.encoder.layer.\1.output.dense.\2"),
    (r"pretrained\.model\.norm\.(\w+)", r"dpt.layernorm.\1"),
    (r"pretrained\.act_postprocess(\d)\.0\.project\.0\.(\w+)", "readout:\\1:\\2"),
    (r"pretrained\.act_postprocess(\d)\.3\.(\w+)", "projection:\\1:\\2"),
    (r"pretrained\.act_postprocess(\d)\.4\.(\w+)", "resize:\\1:\\2"),
    (r"scratch\.layer(\d)_rn\.weight", "convs:\\1"),
    (r"scratch\.refinenet(\d)\.out_conv\.(\w+)", "fusion:\\1:projection.\\2"),
    (
        r"scratch\.refinenet(\d)\.resConfUnit(\d)\.conv(\d)\.(\w+)",
        "fusion:\\1:residual_layer\\2.convolution\\3.\\4",
    ),
    (r"scratch\.output_conv\.(\d)\.(\w+)", r"head.head.\1.\2"),
)
_DROPPED = re.compile(r"pretrained\.model\.head\.")  # the ViT's ImageNet classifier: DPT never reads it


def is_midas_hybrid(state: dict[str, Tensor]) -> bool:
    return _BACKBONE + "stem.conv.weight" in state and "scratch.output_conv.0.weight" in state


def midas_config(state: dict[str, Tensor], source: str) -> DPTConfig:
    """DPT-Hybrid's configuration, sized from the file (ViT width and depth, ResNet stage depths)."""
    if not is_midas_hybrid(state):
        raise ModelLoadError(
            f"{source}: not MiDaS DPT-Hybrid weights (expected {_BACKBONE}stem.conv.weight and "
            "scratch.output_conv.0.weight, as in dpt_hybrid-midas-501f0c75.pt)"
        )
    width = int(state[_VIT + "cls_token"].shape[-1])
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(_VIT + "blocks."))
    stages = sorted({int(k.split(".")[5]) for k in state if k.startswith(_BACKBONE + "stages.")})
    depths = [
        1 + max(int(k.split(".")[7]) for k in state if k.startswith(f"{_BACKBONE}stages.{s}.blocks."))
        for s in stages
    ]
    grid = math.isqrt(int(state[_VIT + "pos_embed"].shape[1]) - 1)
    backbone = BitConfig(
        global_padding="same",
        layer_type="bottleneck",
        depths=depths,
        out_features=[f"stage{i + 1}" for i in range(len(depths))],  # pyright: ignore[reportCallIssue]
        embedding_dynamic_padding=True,
    )
    return DPTConfig(
        is_hybrid=True,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        intermediate_size=int(state[_VIT + "blocks.0.mlp.fc1.weight"].shape[0]),
        image_size=grid * 16,
        patch_size=16,
        backbone_config=backbone,
        backbone_featmap_shape=[1, 1024, grid, grid],
        backbone_out_indices=[2, 5, layers - 4, layers - 1],
        readout_type="project",
        neck_hidden_sizes=[int(state[f"scratch.layer{i}_rn.weight"].shape[1]) for i in range(1, 5)],
        reassemble_factors=[1, 1, 1, 0.5],
        fusion_hidden_size=int(state["scratch.layer1_rn.weight"].shape[0]),
        head_in_index=-1,
        use_batch_norm_in_fusion_residual=False,
    )


def transformers_names(state: dict[str, Tensor], layers: int = 4) -> dict[str, Tensor]:
    """The file's tensors under transformers' DPT-Hybrid names (fused qkv split in three)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if _DROPPED.match(key):
            continue
        qkv = re.fullmatch(r"pretrained\.model\.blocks\.(\d+)\.attn\.qkv\.(\w+)", key)
        if qkv:
            for part, name in zip(value.chunk(3, dim=0), ("query", "key", "value"), strict=True):
                out[f"dpt.encoder.layer.{qkv[1]}.attention.attention.{name}.{qkv[2]}"] = part
            continue
        out[_renamed(key, layers)] = value
    return out


def _renamed(key: str, layers: int) -> str:
    for pattern, replacement in _RENAMES:
        if re.fullmatch(pattern, key):
            name = re.sub(pattern, replacement, key)
            return _placed(name, layers)
    return key  # an unknown key: the strict load names it


def _placed(name: str, layers: int) -> str:
    """Indices the original counts differently: taps 1..4 → 0..3, refinenet4 (deepest) → fusion 0."""
    kind, _, rest = name.partition(":")
    if not rest:
        return name
    index, _, tail = rest.partition(":")
    if kind == "readout":
        return f"neck.reassemble_stage.readout_projects.{int(index) - 1}.0.{tail}"
    if kind == "projection":
        return f"neck.reassemble_stage.layers.{int(index) - 1}.projection.{tail}"
    if kind == "resize":
        return f"neck.reassemble_stage.layers.{int(index) - 1}.resize.{tail}"
    if kind == "convs":
        return f"neck.convs.{int(index) - 1}.weight"
    return f"neck.fusion_stage.layers.{layers - int(index)}.{tail}"  # fusion


def load_midas(path: Path, allow_unsafe_pickle: bool) -> DPTForDepthEstimation:
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    config = midas_config(state, str(path))
    renamed = transformers_names(state)
    network = load_network(
        path, lambda: DPTForDepthEstimation(config), "MiDaS", allow_unsafe_pickle, state=renamed
    )
    embeddings = network.dpt.embeddings
    # Any size whose sides are multiples of 16, as the original (its position embeddings resized to the
    # grid); transformers' hybrid embeddings refuse other sizes unless told to interpolate.
    embeddings.forward = partial(type(embeddings).forward, embeddings, interpolate_pos_encoding=True)
    return network


@torch.no_grad()
def midas_depth(network: DPTForDepthEstimation, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The raw relative inverse depth [H, W] (float32) of an RGB uint8 picture (sides multiples of 16)."""
    pixels = torch.from_numpy(image.astype(np.float32)).to(device) / 127.5 - 1.0
    x = pixels.permute(2, 0, 1).unsqueeze(0)
    return predicted_depth(network, x)[0].float().cpu().numpy()


def predicted_depth(network: DPTForDepthEstimation, x: Tensor) -> Tensor:
    """`DPTForDepthEstimation`'s steps for a hybrid model at any grid: transformers' own forward assumes
    a square patch grid for hybrids; the original reads any (its reassembly is told the grid)."""
    config: Any = network.config
    outputs: Any = network.dpt(x, output_hidden_states=True)
    layers = outputs.hidden_states[1:]  # [0] is the embeddings
    taps = [*outputs.intermediate_activations, *(layers[i] for i in config.backbone_out_indices[2:])]
    patch = int(config.patch_size)
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    return network.head(network.neck(taps, *grid))


def _normalised(depth: np.ndarray) -> np.ndarray:
    """0..1 in float32, in the extension's steps (minus the minimum, over the new maximum)."""
    shifted = depth - depth.min()
    top = shifted.max()
    return shifted / top if top > 0 else np.zeros_like(shifted)


def depth_map(depth: np.ndarray) -> np.ndarray:
    """0..255: the depth stretched to its own range (near = white)."""
    return (_normalised(depth) * 255.0).clip(0, 255).astype(np.uint8)


def normal_map(depth: np.ndarray, background: float, a: float = math.pi * 2.0) -> np.ndarray:
    """The extension's normals: Sobel x / y of the depth and z = a, zeroed where the normalised depth is
    under `background`, unit length, to 0..255 (x, y, z as blue, green, red: its channel order)."""
    normalised = _normalised(depth)
    x = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3)
    y = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3)
    z = np.ones_like(x) * a
    x[normalised < background] = 0
    y[normalised < background] = 0
    normal = np.stack([x, y, z], axis=2)
    normal /= np.sum(normal**2.0, axis=2, keepdims=True) ** 0.5
    return (normal * 127.5 + 127.5).clip(0, 255).astype(np.uint8)[:, :, ::-1]
