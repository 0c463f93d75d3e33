"""Straight line segments: M-LSD (NAVER's mobile line segment detector) from `mlsd/mlsd_large_512_fp32.pth`,
the file sd-webui-controlnet uses for the `mlsd` preprocessor.

A MobileNetV2 trunk (TFLite-style padding: stride-2 convolutions pad only right and bottom) on the RGB
image plus a constant fourth channel, and a small FPN decoder back to half the input size. Of its 16
output maps the last nine are read: a line-centre score and, at each centre, the offsets of the
segment's two ends. Centres that are local maxima (3x3) among the 200 best, scoring above the value
threshold, whose segment is longer than the distance threshold, become lines drawn 1 pixel wide.

The layers keep the positions the published file indexes (`backbone.features.3.conv.1.0.weight`,
`block17.conv2.1.running_mean`, ...), so the file loads as it is.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

# MobileNetV2's inverted residual stages (expansion, width, repeats, first stride), cut after 96 wide.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
FEATURE_TAPS = (1, 3, 6, 10, 13)  # the trunk layers whose outputs feed the decoder (1/2 .. 1/16 size)
CANDIDATES = 200


class _ConvBnRelu6(nn.Sequential):
    """Convolution, batch norm, ReLU6; stride 2 pads right and bottom only, as TFLite."""

    def __init__(self, inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        padding = 0 if stride == 2 else (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(inputs, outputs, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU6(),
        )
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 2:
            x = F.pad(x, (0, 1, 0, 1))
        return super().forward(x)


class _InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        expand = [_ConvBnRelu6(inputs, hidden, kernel=1)] if expansion != 1 else []
        self.conv = nn.Sequential(
            *expand,
            _ConvBnRelu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class _Trunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBnRelu6(4, 32, stride=2)]
        width = 32
        for expansion, outputs, repeats, stride in STAGES:
            for index in range(repeats):
                layers.append(_InvertedResidual(width, outputs, stride if index == 0 else 1, expansion))
                width = outputs
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_TAPS:
                taps.append(x)
        return taps


def _conv_bn_relu(
    inputs: int, outputs: int, kernel: int, padding: int = 0, dilation: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, padding=padding, dilation=dilation),
        nn.BatchNorm2d(outputs),
        nn.ReLU(),
    )


class _Merge(nn.Module):
    """A 1x1 projection of the finer skip (`conv2`) beside the coarser path's (`conv1`), upsampled x2."""

    def __init__(self, skip: int, coarse: int, upscale: bool = True) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(coarse, 64, 1)
        self.conv2 = _conv_bn_relu(skip, 64, 1)
        self.upscale = upscale

    def forward(self, skip: Tensor, coarse: Tensor) -> Tensor:
        coarse = self.conv1(coarse)
        if self.upscale:
            coarse = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=True)
        return torch.cat((self.conv2(skip), coarse), dim=1)


class _Refine(nn.Module):
    def __init__(self, channels: int = 128, outputs: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, channels, 3, padding=1)
        self.conv2 = _conv_bn_relu(channels, outputs, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x) + x)


class _Head(nn.Module):
    def __init__(self, channels: int = 64, outputs: int = 16) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, channels, 3, padding=5, dilation=5)
        self.conv2 = _conv_bn_relu(channels, channels, 3, padding=1)
        self.conv3 = nn.Conv2d(channels, outputs, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.conv2(self.conv1(x)))


class MlsdNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Trunk()
        self.block15, self.block16 = _Merge(64, 96, upscale=False), _Refine()
        self.block17, self.block18 = _Merge(32, 64), _Refine()
        self.block19, self.block20 = _Merge(24, 64), _Refine()
        self.block21, self.block22 = _Merge(16, 64), _Refine()
        self.block23 = _Head()

    def forward(self, x: Tensor) -> Tensor:
        """[N, 9, H/2, W/2]: centre score logits, then (start x, start y, end x, end y) offsets, for an
        [N, 4, H, W] input in -1..1."""
        half, quarter, eighth, sixteenth, last = self.backbone(x)
        x = self.block16(self.block15(sixteenth, last))
        x = self.block18(self.block17(eighth, x))
        x = self.block20(self.block19(quarter, x))
        x = self.block22(self.block21(half, x))
        return self.block23(x)[:, 7:]


def load_mlsd(path: Path, allow_unsafe_pickle: bool = False) -> MlsdNetwork:
    """mlsd_large_512_fp32.pth (or a .safetensors of it)."""
    return load_network(path, MlsdNetwork, "M-LSD", allow_unsafe_pickle)


def _segments(maps: Tensor, min_score: float, min_length: float) -> np.ndarray:
    """[K, 4] float64 (x0, y0, x1, y1) in the half-size grid of the centres that pass both thresholds."""
    heat = torch.sigmoid(maps[0, 0])
    peaks = heat * (F.max_pool2d(heat[None], 3, stride=1, padding=1)[0] == heat)
    scores, indices = torch.topk(peaks.flatten(), min(CANDIDATES, peaks.numel()))
    width = heat.shape[1]
    ys, xs = (indices // width).cpu().numpy(), (indices % width).cpu().numpy()
    offsets = maps[0, 1:5].permute(1, 2, 0).cpu().numpy()[ys, xs]  # [K, 4] float32
    length = np.sqrt(((offsets[:, :2] - offsets[:, 2:]) ** 2).sum(axis=-1))
    keep = (scores.cpu().numpy() > min_score) & (length > min_length)
    centres = np.stack([xs, ys, xs, ys], axis=-1)[keep]
    return centres + offsets[keep].astype(np.float64)


@torch.no_grad()
def line_segments(
    network: MlsdNetwork, image: np.ndarray, device: torch.device, min_score: float, min_length: float
) -> np.ndarray:
    """White 1-pixel segments on black (HxW uint8) for an HxWx3 uint8 RGB image (H, W even)."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32)
    constant = torch.full_like(pixels[..., :1], 1.0)
    # Channels-last with a full batch stride, the layout controlnet-aux's numpy transpose gives: another
    # layout picks other convolution kernels, whose rounding flipped a centre across the score threshold
    # on an AMD CPU (a segment more than the extension draws).
    batch = (torch.cat([pixels, constant], dim=-1)[None].permute(0, 3, 1, 2) / 127.5) - 1.0
    drawing = np.zeros(image.shape[:2], np.uint8)
    for x0, y0, x1, y1 in (2 * _segments(network(batch).float(), min_score, min_length)).astype(np.int64):
        cv2.line(drawing, (int(x0), int(y0)), (int(x1), int(y1)), 255, 1)
    return drawing
