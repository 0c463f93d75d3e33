"""ADE20K segmentation with UniFormer + UPerNet (`uniformer/upernet_global_small.pth`, lllyasviel's
`annotator/ckpts` file): what sd-webui-controlnet's `segmentation` preprocessor (seg_ufade20k) runs.

The backbone is UniFormer-S with global attention: four stages at 1/4 .. 1/32 of the picture (64, 128,
320, 512 wide; 3, 4, 8, 3 blocks), each entered through a strided patch convolution with a LayerNorm.
The first two stages mix with convolutions (a depthwise 5x5 between two 1x1s after a BatchNorm), the
last two with multi-head self-attention (64 per head); every block first adds a depthwise 3x3 position
convolution and ends with a 4x MLP. Each stage's output is LayerNormed. The UPerNet head pools the last
stage at 1, 2, 3 and 6 cells (PPM), builds a feature pyramid over the four stages (512 wide, conv + BN
+ ReLU each), and classifies the fused 1/4-size features into 150 classes.

As the extension runs it (mmseg's ADE20K test pipeline): the picture is scaled (bilinear) so its short
side is at most 512 and its long side at most 2048, its channels are reversed (the extension hands mmseg
an RGB picture that the pipeline's `to_rgb` swaps) and normalised with ImageNet's statistics in 0..255,
the class scores are resized back to the picture (bilinear) and each pixel gets its best class's colour.
The widths and block counts are read from the file, so any UniFormer of this shape loads.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators import ade20k
from modules.sumi.engine.controlnet.annotators.weights import load_network
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_state_dict

HEAD_DIM = 64
POOL_SCALES = (1, 2, 3, 6)
SHORT_SIDE, LONG_SIDE = 512, 2048  # mmseg's ADE20K test scale (2048, 512), aspect kept
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
_KEPT = ("backbone.", "decode_head.")  # the auxiliary FCN head only trains


class _PatchEmbed(nn.Module):
    def __init__(self, inputs: int, width: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(inputs, width, patch, patch)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Mlp(nn.Module):
    def __init__(self, width: int, convolutional: bool) -> None:
        super().__init__()
        layer = (lambda a, b: nn.Conv2d(a, b, 1)) if convolutional else nn.Linear
        self.fc1, self.fc2 = layer(width, 4 * width), layer(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _ConvBlock(nn.Module):
    """UniFormer's convolutional block (CBlock): local mixing by a depthwise 5x5."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm1 = nn.BatchNorm2d(width)
        self.conv1 = nn.Conv2d(width, width, 1)
        self.attn = nn.Conv2d(width, width, 5, padding=2, groups=width)
        self.conv2 = nn.Conv2d(width, width, 1)
        self.norm2 = nn.BatchNorm2d(width)
        self.mlp = _Mlp(width, convolutional=True)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class _Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.heads = max(1, width // HEAD_DIM)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(mixed.transpose(1, 2).reshape(batch, tokens, width))


class _AttentionBlock(nn.Module):
    """UniFormer's self-attention block (SABlock), global over the stage's grid."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pos_embed = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = _Attention(width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = _Mlp(width, convolutional=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        batch, width, height, across = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.attn(self.norm1(tokens))
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.transpose(1, 2).reshape(batch, width, height, across)


class UniFormerBackbone(nn.Module):
    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...]) -> None:
        super().__init__()
        inputs = 3
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True), start=1):
            self.add_module(f"patch_embed{stage}", _PatchEmbed(inputs, width, 4 if stage == 1 else 2))
            block = _ConvBlock if stage <= 2 else _AttentionBlock
            self.add_module(f"blocks{stage}", nn.ModuleList(block(width) for _ in range(depth)))
            self.add_module(f"norm{stage}", nn.LayerNorm(width, eps=1e-6))
            inputs = width
        self.stages = len(widths)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"blocks{stage}"):
                x = block(x)
            outputs.append(getattr(self, f"norm{stage}")(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        return outputs


class _ConvBnRelu(nn.Module):
    """mmcv's ConvModule with BatchNorm and ReLU (its tensors under `conv` and `bn`)."""

    def __init__(self, inputs: int, outputs: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(outputs)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _resize(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    def __init__(self, widths: tuple[int, ...], channels: int, classes: int) -> None:
        super().__init__()
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), _ConvBnRelu(widths[-1], channels, 1))
            for scale in POOL_SCALES
        )
        self.bottleneck = _ConvBnRelu(widths[-1] + len(POOL_SCALES) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(_ConvBnRelu(width, channels, 1) for width in widths[:-1])
        self.fpn_convs = nn.ModuleList(_ConvBnRelu(channels, channels, 3) for _ in widths[:-1])
        self.fpn_bottleneck = _ConvBnRelu(len(widths) * channels, channels, 3)
        self.conv_seg = nn.Conv2d(channels, classes, 1)

    def _pooled(self, top: Tensor) -> Tensor:
        pooled = [_resize(module(top), top.shape[2:]) for module in self.psp_modules]
        return self.bottleneck(torch.cat([top, *pooled], dim=1))

    def forward(self, features: list[Tensor]) -> Tensor:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, features, strict=False)]
        laterals.append(self._pooled(features[-1]))
        for level in range(len(laterals) - 1, 0, -1):  # top-down: each level gets the coarser one added
            laterals[level - 1] = laterals[level - 1] + _resize(
                laterals[level], laterals[level - 1].shape[2:]
            )
        outputs = [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=False)] + [laterals[-1]]
        outputs = [outputs[0]] + [_resize(x, outputs[0].shape[2:]) for x in outputs[1:]]
        return self.conv_seg(self.fpn_bottleneck(torch.cat(outputs, dim=1)))


class UniFormerSegmentor(nn.Module):
    """Class scores at the picture's size for a normalised picture [N, 3, H, W]."""

    def __init__(self, widths: tuple[int, ...], depths: tuple[int, ...], channels: int, classes: int) -> None:
        super().__init__()
        self.backbone = UniFormerBackbone(widths, depths)
        self.decode_head = UPerHead(widths, channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return _resize(self.decode_head(self.backbone(x)), x.shape[2:])


def _shape(state: dict[str, Tensor], path: Path) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
    """(stage widths, blocks per stage, head channels, classes) as the file's tensors give them."""
    try:
        widths, depths = [], []
        while f"backbone.patch_embed{len(widths) + 1}.proj.weight" in state:
            stage = len(widths) + 1
            widths.append(state[f"backbone.patch_embed{stage}.proj.weight"].shape[0])
            prefix = f"backbone.blocks{stage}."
            depths.append(
                1 + max(int(key[len(prefix) :].split(".")[0]) for key in state if key.startswith(prefix))
            )
        classes, channels = state["decode_head.conv_seg.weight"].shape[:2]
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a UniFormer + UPerNet segmentation file (no {exc})") from exc
    if len(widths) != 4:
        raise ModelLoadError(f"{path}: not a UniFormer + UPerNet segmentation file ({len(widths)} stages)")
    if any(width % max(1, width // HEAD_DIM) for width in widths[2:]):
        raise ModelLoadError(
            f"{path}: stage widths {widths} do not split into {HEAD_DIM}-wide attention heads"
        )
    if classes > ade20k.CLASSES:
        raise ModelLoadError(f"{path}: segments {classes} classes; ADE20K's colours cover {ade20k.CLASSES}")
    return tuple(widths), tuple(depths), int(channels), int(classes)


def load_uniformer(path: Path, allow_unsafe_pickle: bool = False) -> UniFormerSegmentor:
    """upernet_global_small.pth (mmcv's checkpoint: `meta` and `state_dict`), or a .safetensors of it."""
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    state = {key: value for key, value in state.items() if key.startswith(_KEPT)}
    widths, depths, channels, classes = _shape(state, path)
    return load_network(
        path,
        lambda: UniFormerSegmentor(widths, depths, channels, classes),
        "uniformer",
        allow_unsafe_pickle,
        state=state,
    )


def _test_scale(image: np.ndarray) -> np.ndarray:
    """mmcv's imrescale to (2048, 512): the largest scale that keeps both sides within bounds."""
    height, width = image.shape[:2]
    scale = min(LONG_SIDE / max(height, width), SHORT_SIDE / min(height, width))
    size = (int(width * scale + 0.5), int(height * scale + 0.5))
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _normalised(image: np.ndarray, device: torch.device) -> Tensor:
    reversed_channels = np.ascontiguousarray(image[..., ::-1], dtype=np.float32)
    pixels = (reversed_channels - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return torch.from_numpy(pixels).to(device).permute(2, 0, 1)[None]


@torch.no_grad()
def ade20k_segments(network: UniFormerSegmentor, image: np.ndarray, device: torch.device) -> np.ndarray:
    """Each pixel of the RGB picture (HxWx3 uint8) in the colour of its ADE20K class, at the picture's size."""
    scores = network(_normalised(_test_scale(image), device))
    classes = _resize(scores, image.shape[:2])[0].argmax(dim=0).cpu().numpy()
    return ade20k.PALETTE[classes]
