"""ZoeDepth (`zoedepth/ZoeD_M12_N.pt`, what sd-webui-controlnet's depth_zoe runs): MiDaS 3.1's BEiT-L/16
backbone and DPT neck under ZoeDepth's metric-bins head, run as transformers' ZoeDepthForDepthEstimation
with the file's tensors renamed onto it (sizes read from the file).

The extension's inference: the picture (0..1) is padded by reflection (sqrt(side / 2) x 3 pixels each
way), scaled to about 384x512 keeping its aspect (the side nearer its target fitted, both multiples of
32, bilinear with aligned corners), normalised to -1..1, and its metric depth scaled back (bicubic) and
cropped; the same for the mirrored picture, and the two averaged. The map: depth between its 2nd and
85th percentiles, inverted (near is white), as 8-bit grey.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import check_weights, load_weights, read_state_dict

BACKBONE = "core.core.pretrained.model."
NECK_SIZES = [256, 512, 1024, 1024]
NYU_BINS = {"name": "nyu", "n_bins": 64, "min_depth": 1e-3, "max_depth": 10.0}
TARGET = (384, 512)  # (height, width) the extension's config asks of MiDaS
MULTIPLE = 32
PAD_FACTOR = 3.0
LOW, HIGH = 2, 85  # the percentiles the map spans
_DROPPED = ("fc_norm", "relative_position_index", "k_idx", "K_minus_1", "model.head.")
_HEADS = (
    "conv2.",
    "seed_bin_regressor.",
    "seed_projector.",
    "projectors.",
    "attractors.",
    "conditional_log_binomial.",
)


def zoe_config(state: Mapping[str, Tensor]) -> ZoeDepthConfig:
    """ZoeD_N's configuration, its BEiT sized from the file (width, depth, heads, MLP width)."""
    layers = 1 + max(int(k.split(".")[5]) for k in state if k.startswith(BACKBONE + "blocks."))
    backbone = BeitConfig(
        image_size=384,
        num_hidden_layers=layers,
        hidden_size=int(state[BACKBONE + "cls_token"].shape[-1]),
        intermediate_size=int(state[BACKBONE + "blocks.0.mlp.fc1.weight"].shape[0]),
        num_attention_heads=int(state[BACKBONE + "blocks.0.attn.relative_position_bias_table"].shape[1]),
        use_relative_position_bias=True,
        reshape_hidden_states=False,
        out_features=[f"stage{layers // 4 * (i + 1)}" for i in range(4)],  # pyright: ignore[reportCallIssue]
    )
    return ZoeDepthConfig(
        backbone_config=backbone,
        neck_hidden_sizes=NECK_SIZES,
        bin_centers_type="softplus",
        bin_configurations=[NYU_BINS],
    )


def _renamed(key: str) -> str:
    """One tensor's name in transformers' ZoeDepth (the BEiT attention's q/k/v are split elsewhere)."""
    name = key.replace(BACKBONE + "blocks.", "backbone.beit.layers.")
    name = name.replace(BACKBONE + "patch_embed.proj", "backbone.beit.embeddings.patch_embeddings.projection")
    name = name.replace(BACKBONE + "cls_token", "backbone.beit.embeddings.cls_token")
    if name.startswith("backbone.beit.layers."):
        for old, new in (
            ("norm1", "layernorm_before"),
            ("norm2", "layernorm_after"),
            ("gamma_1", "lambda_1"),
            ("gamma_2", "lambda_2"),
            ("attn.proj", "attention.o_proj"),
            ("attn.relative_position_bias_table", "relative_position_bias.relative_position_bias_table"),
        ):
            name = name.replace(old, new)
    for i in range(4):
        post = f"core.core.pretrained.act_postprocess{i + 1}."
        name = name.replace(post + "0.project.0", f"neck.reassemble_stage.readout_projects.{i}.0")
        name = name.replace(post + "3", f"neck.reassemble_stage.layers.{i}.projection")
        name = name.replace(post + "4", f"neck.reassemble_stage.layers.{i}.resize")
        name = name.replace(f"core.core.scratch.layer{i + 1}_rn", f"neck.convs.{i}")
        name = name.replace(f"core.core.scratch.refinenet{i + 1}", f"neck.fusion_stage.layers.{3 - i}")
    name = name.replace("resConfUnit1", "residual_layer1").replace("resConfUnit2", "residual_layer2")
    if "residual_layer" in name:
        name = name.replace("conv1", "convolution1").replace("conv2", "convolution2")
    name = name.replace("out_conv", "projection")
    for index, conv in (("0", "conv1"), ("2", "conv2"), ("4", "conv3")):
        name = name.replace(f"core.core.scratch.output_conv.{index}", f"relative_head.{conv}")
    if name.startswith(_HEADS):
        name = "metric_head." + name
    return name.replace("_net.0", "conv1").replace("_net.2", "conv2")


def zoe_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The file's tensors under transformers' names: each block's fused qkv split into q, k, v
    (q and v carry the file's biases; BEiT's k has none); classifier and index tensors dropped."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if any(part in key for part in _DROPPED):
            continue
        fused = re.fullmatch(re.escape(BACKBONE) + r"blocks\.(\d+)\.attn\.(qkv\.weight|q_bias|v_bias)", key)
        if fused is None:
            out[_renamed(key)] = value
            continue
        prefix = f"backbone.beit.layers.{fused.group(1)}.attention."
        if fused.group(2) == "qkv.weight":
            for part, chunk in zip("qkv", value.chunk(3), strict=True):
                out[f"{prefix}{part}_proj.weight"] = chunk
        else:
            out[f"{prefix}{fused.group(2)[0]}_proj.bias"] = value
    return out


def load_zoe(path: Path, allow_unsafe_pickle: bool = False) -> ZoeDepthForDepthEstimation:
    """ZoeD_M12_N.pt (its `{"model": ...}` wrapper unwrapped); another file is a ModelLoadError."""
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if BACKBONE + "cls_token" not in state or "seed_bin_regressor._net.0.weight" not in state:
        raise ModelLoadError(f"{path.name} is not a ZoeDepth checkpoint (no BEiT backbone and metric head)")
    check_weights(state, "ZoeDepth", path)
    network = ZoeDepthForDepthEstimation(
        zoe_config(state)
    )  # on the CPU: two index buffers are built, not stored
    return load_weights(network, zoe_state(state), "ZoeDepth annotator", path, torch.float32)


def _midas_size(height: int, width: int) -> tuple[int, int]:
    """MiDaS' "minimal" resize keeping the aspect: the scale nearer 1 of the two targets' applies to both
    sides, each rounded to a multiple of 32."""
    scale_h, scale_w = TARGET[0] / height, TARGET[1] / width
    scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    return (
        int(np.round(scale * height / MULTIPLE) * MULTIPLE),
        int(np.round(scale * width / MULTIPLE) * MULTIPLE),
    )


def _metric_depth(network: ZoeDepthForDepthEstimation, x: Tensor) -> Tensor:
    """[1, 1, h, w] metric depth for a padded picture [1, 3, h, w] in 0..1, at its size."""
    prepared = F.interpolate(x, _midas_size(*x.shape[-2:]), mode="bilinear", align_corners=True)
    depth = network(pixel_values=(prepared - 0.5) / 0.5).predicted_depth[:, None]
    if depth.shape[-2:] != x.shape[-2:]:
        depth = F.interpolate(depth, x.shape[-2:], mode="bicubic", align_corners=False)
    return depth


def _padded_depth(network: ZoeDepthForDepthEstimation, x: Tensor) -> Tensor:
    pad_h, pad_w = int(np.sqrt(x.shape[2] / 2) * PAD_FACTOR), int(np.sqrt(x.shape[3] / 2) * PAD_FACTOR)
    padding = [pad_w, pad_w, pad_h, pad_h] if pad_h > 0 else [pad_w, pad_w]
    depth = _metric_depth(network, F.pad(x, padding, mode="reflect"))
    if pad_h > 0:
        depth = depth[:, :, pad_h:-pad_h]
    return depth[:, :, :, pad_w:-pad_w] if pad_w > 0 else depth


@torch.no_grad()
def zoe_depth(network: ZoeDepthForDepthEstimation, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The depth map (HxW uint8, near is white) of an HxWx3 uint8 RGB picture."""
    x = torch.from_numpy(image).to(device, torch.float32).permute(2, 0, 1)[None] / 255.0
    mirrored = _padded_depth(network, torch.flip(x, dims=[3]))
    depth = ((_padded_depth(network, x) + torch.flip(mirrored, dims=[3])) / 2)[0, 0].cpu().numpy()
    low, high = np.percentile(depth, LOW), np.percentile(depth, HIGH)
    depth -= low  # in place, in float32, as the extension steps
    depth /= high - low
    return ((1.0 - depth) * 255.0).clip(0, 255).astype(np.uint8)
