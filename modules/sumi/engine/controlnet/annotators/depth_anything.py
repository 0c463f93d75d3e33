"""Relative depth: Depth Anything (v1, `depth_anything/depth_anything_vitl14.pth`) and Depth Anything V2
(`depth_anything_v2/depth_anything_v2_vitl.safetensors`), the files sd-webui-controlnet uses.

A DINOv2 vision transformer (14-pixel patches, layer scale) feeds four of its layers' tokens to a DPT
head: each layer's tokens are laid out as a grid, projected, brought to 4x, 2x, 1x and 1/2 the patch
grid, and fused coarse to fine by residual convolution units; a last convolution draws disparity (near
is large) at the input size. V1 taps the last four layers, V2 layers spread through the depth.

Sizes are read from the file (embedding width, layer count, head widths), so the published ViT-L files
and smaller variants in the same layout load alike. The layers keep the published names
(`pretrained.blocks.23.attn.qkv.weight`, `depth_head.scratch.refinenet4.resConfUnit2.conv1.bias`).
Attention runs through PyTorch's fused kernel, equal to the original's within float tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_state_dict

PATCH, HEAD_WIDTH, INPUT_SIDE = 14, 64, 518
POSITION_OFFSET = 0.1  # DINOv2's offset when it rescales position embeddings to another grid
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DepthAnythingShape:
    """What a file's tensors say about its network."""

    width: int
    layers: int
    positions: int  # the pretraining grid's patches (37 x 37)
    features: int
    head_channels: tuple[int, int, int, int]
    taps: tuple[int, int, int, int]


def _taps(layers: int, version: int) -> tuple[int, int, int, int]:
    """The four layers the head reads: V1 the last four; V2 the original's table (ViT-L: 4, 11, 17,
    23), spread evenly for other depths (ViT-S/B: 2, 5, 8, 11)."""
    if version == 1:
        return (layers - 4, layers - 3, layers - 2, layers - 1)
    if layers == 24:
        return (4, 11, 17, 23)
    quarter = layers // 4
    return (quarter - 1, 2 * quarter - 1, 3 * quarter - 1, layers - 1)


def shape_of(state: dict[str, Tensor], version: int) -> DepthAnythingShape:
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("pretrained.blocks."))
    head = tuple(int(state[f"depth_head.projects.{i}.weight"].shape[0]) for i in range(4))
    return DepthAnythingShape(
        width=int(state["pretrained.cls_token"].shape[-1]),
        layers=layers,
        positions=int(state["pretrained.pos_embed"].shape[1]) - 1,
        features=int(state["depth_head.scratch.layer1_rn.weight"].shape[0]),
        head_channels=head,  # type: ignore[arg-type]
        taps=_taps(layers, version),
    )


class _Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = width // HEAD_WIDTH
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v)
        return self.proj(mixed.transpose(1, 2).reshape(batch, tokens, width))


class _Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _LayerScale(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(width, eps=1e-6), _Attention(width), _LayerScale(width)
        self.norm2, self.mlp, self.ls2 = nn.LayerNorm(width, eps=1e-6), _Mlp(width), _LayerScale(width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, PATCH, PATCH)


class _DinoV2(nn.Module):
    def __init__(self, shape: DepthAnythingShape) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, shape.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, shape.positions + 1, shape.width))
        self.mask_token = nn.Parameter(torch.zeros(1, shape.width))  # in the file; unused at inference
        self.patch_embed = _PatchEmbed(shape.width)
        self.blocks = nn.ModuleList(_Block(shape.width) for _ in range(shape.layers))
        self.norm = nn.LayerNorm(shape.width, eps=1e-6)

    def _positions(self, rows: int, columns: int) -> Tensor:
        """The position embeddings for a rows x columns grid: the pretraining grid's, rescaled bicubically
        by DINOv2's factors (its 0.1 offset included) unless the grid is the pretraining one."""
        side = int(math.sqrt(self.pos_embed.shape[1] - 1))
        if rows == columns == side:
            return self.pos_embed
        grid = self.pos_embed[:, 1:].float().reshape(1, side, side, -1).permute(0, 3, 1, 2)
        factors = ((rows + POSITION_OFFSET) / side, (columns + POSITION_OFFSET) / side)
        grid = F.interpolate(grid, scale_factor=factors, mode="bicubic")
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * columns, -1)
        return torch.cat([self.pos_embed[:, :1].float(), grid], dim=1).to(self.pos_embed.dtype)

    def layer_tokens(self, image: Tensor, taps: tuple[int, ...]) -> list[Tensor]:
        """The normalised patch tokens (class token dropped) after each layer in `taps`."""
        rows, columns = image.shape[-2] // PATCH, image.shape[-1] // PATCH
        x = self.patch_embed.proj(image).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self._positions(rows, columns)
        found = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in taps:
                found.append(self.norm(x)[:, 1:])
        return found


class _ResidualUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class _Fusion(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = _ResidualUnit(features)  # noqa: N815 - the published name
        self.resConfUnit2 = _ResidualUnit(features)  # noqa: N815

    def forward(self, x: Tensor, skip: Tensor | None = None, size: tuple[int, ...] | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    def __init__(self, channels: tuple[int, ...], features: int) -> None:
        super().__init__()
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = (
            nn.Conv2d(inputs, features, 3, padding=1, bias=False) for inputs in channels
        )
        self.refinenet1, self.refinenet2, self.refinenet3, self.refinenet4 = (
            _Fusion(features) for _ in range(4)
        )
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.ReLU(),
            nn.Identity(),
        )


class _DptHead(nn.Module):
    def __init__(self, shape: DepthAnythingShape) -> None:
        super().__init__()
        channels = shape.head_channels
        self.projects = nn.ModuleList(nn.Conv2d(shape.width, c, 1) for c in channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(channels[0], channels[0], 4, stride=4),
                nn.ConvTranspose2d(channels[1], channels[1], 2, stride=2),
                nn.Identity(),
                nn.Conv2d(channels[3], channels[3], 3, stride=2, padding=1),
            ]
        )
        self.scratch = _Scratch(channels, shape.features)

    def forward(self, tokens: list[Tensor], rows: int, columns: int) -> Tensor:
        maps = []
        for index, layer in enumerate(tokens):
            grid = layer.permute(0, 2, 1).reshape(layer.shape[0], layer.shape[-1], rows, columns)
            maps.append(self.resize_layers[index](self.projects[index](grid)))
        s = self.scratch
        l1, l2, l3, l4 = (
            layer(m)
            for layer, m in zip((s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn), maps, strict=True)
        )
        path = s.refinenet4(l4, size=l3.shape[2:])
        path = s.refinenet3(path, l3, size=l2.shape[2:])
        path = s.refinenet2(path, l2, size=l1.shape[2:])
        path = s.refinenet1(path, l1)
        out = F.interpolate(
            s.output_conv1(path), (rows * PATCH, columns * PATCH), mode="bilinear", align_corners=True
        )
        return s.output_conv2(out)


class DepthAnythingNetwork(nn.Module):
    def __init__(self, shape: DepthAnythingShape) -> None:
        super().__init__()
        self.taps = shape.taps
        self.pretrained = _DinoV2(shape)
        self.depth_head = _DptHead(shape)

    def forward(self, image: Tensor) -> Tensor:
        """[N, H, W] disparity (>= 0) for an ImageNet-normalised [N, 3, H, W] image, H and W multiples of 14."""
        rows, columns = image.shape[-2] // PATCH, image.shape[-1] // PATCH
        tokens = self.pretrained.layer_tokens(image, self.taps)
        return F.relu(self.depth_head(tokens, rows, columns)).squeeze(1)


def _loader(version: int):
    def load(path: Path, allow_unsafe_pickle: bool = False) -> DepthAnythingNetwork:
        state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
        try:
            shape = shape_of(state, version)
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"{path.name} is not a Depth Anything file (no {exc})") from exc
        build = lambda: DepthAnythingNetwork(shape)  # noqa: E731
        return load_network(path, build, "Depth Anything", allow_unsafe_pickle, state=state)

    load.__qualname__ = f"load_depth_anything_v{version}"
    return load


load_depth_anything_v1 = _loader(1)
load_depth_anything_v2 = _loader(2)


def network_input(image: np.ndarray) -> np.ndarray:
    """The extension's input for an RGB picture: channels swapped (it converts "BGR to RGB" on an RGB
    picture), scaled bicubically so both sides are at least 518 and multiples of 14, normalised;
    [3, H, W] float32."""
    pixels = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), dtype=np.float64) / 255.0
    height, width = pixels.shape[:2]
    scale = max(INPUT_SIDE / height, INPUT_SIDE / width)
    size = []
    for side in (scale * height, scale * width):
        fitted = int(np.round(side / PATCH) * PATCH)
        size.append(fitted if fitted >= INPUT_SIDE else int(np.ceil(side / PATCH) * PATCH))
    pixels = cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    pixels = (pixels - np.array(MEAN)) / np.array(STD)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)).astype(np.float32)


@torch.no_grad()
def relative_depth(network: DepthAnythingNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """Depth as gray (HxW uint8, near = white), the network's disparity brought back to the picture's
    size and stretched to 0..255."""
    batch = torch.from_numpy(network_input(image))[None].to(device)
    disparity = network(batch).float()
    disparity = F.interpolate(disparity[None], image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    low, high = disparity.min(), disparity.max()
    if high <= low:  # a flat disparity (the extension divides by zero here)
        return np.zeros(image.shape[:2], np.uint8)
    stretched = (disparity - low) / (high - low) * 255.0
    return stretched.cpu().numpy().astype(np.uint8)
