"""Surface normals: Bae et al.'s uncertainty-aware normal estimator (`normal_bae/scannet.pt`, trained on
ScanNet), the file sd-webui-controlnet uses for `normal_bae`.

An EfficientNet-B5 encoder (TensorFlow's variant: "same" padding on strided convolutions, batch norm
eps 1e-3), a U-Net decoder to half size, and three refinements that each double the size with 1x1
convolutions over the upsampled features and the previous estimate. Each estimate is (x, y, z, kappa),
the direction normalised to unit length; the last one's direction, mapped from -1..1 to 0..255, is the
map.

The layers keep the positions the published file indexes (`encoder.original_model.blocks.3.2.conv_dw`,
`decoder.up1._net.4.running_var`, `decoder.out_conv_res4.6.bias`); the file wraps them in `model` with
DataParallel's `module.` prefix.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

# EfficientNet-B5 stages: (repeats, kernel, stride, expansion, output channels); stage 0 is depthwise-separable.
B5_STAGES = ((3, 3, 1, 1, 24), (5, 3, 2, 6, 40), (5, 5, 2, 6, 64), (7, 3, 2, 6, 128), (7, 5, 1, 6, 176))
B5_STAGES += ((9, 5, 2, 6, 304), (3, 3, 1, 6, 512))
STEM, HEAD, SE_RATIO, BN_EPS = 48, 2048, 0.25, 1e-3
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _SameConv(nn.Conv2d):
    """TensorFlow's "same" padding for a strided convolution: the padding that keeps ceil(size /
    stride), the odd pixel on the right and bottom."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
            pads.append(max((math.ceil(size / stride) - 1) * stride + kernel - size, 0))
        pad_h, pad_w = pads
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(inputs: int, outputs: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride > 1:
        return _SameConv(inputs, outputs, kernel, stride, groups=groups, bias=False)
    return nn.Conv2d(inputs, outputs, kernel, padding=kernel // 2, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, block_inputs: int) -> None:
        super().__init__()
        reduced = int(block_inputs * SE_RATIO)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_expand(F.silu(self.conv_reduce(x.mean((2, 3), keepdim=True)))).sigmoid()


class _DepthwiseSeparable(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int) -> None:
        super().__init__()
        self.conv_dw, self.bn1 = _conv(inputs, inputs, kernel, groups=inputs), _bn(inputs)
        self.se = _SqueezeExcite(inputs, inputs)
        self.conv_pw, self.bn2 = _conv(inputs, outputs), _bn(outputs)
        self.residual = inputs == outputs

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pw(self.se(F.silu(self.bn1(self.conv_dw(x))))))
        return x + y if self.residual else y


class _InvertedResidual(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        self.conv_pw, self.bn1 = _conv(inputs, hidden), _bn(hidden)
        self.conv_dw, self.bn2 = _conv(hidden, hidden, kernel, stride, groups=hidden), _bn(hidden)
        self.se = _SqueezeExcite(hidden, inputs)
        self.conv_pwl, self.bn3 = _conv(hidden, outputs), _bn(outputs)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: Tensor) -> Tensor:
        y = F.silu(self.bn2(self.conv_dw(F.silu(self.bn1(self.conv_pw(x))))))
        y = self.bn3(self.conv_pwl(self.se(y)))
        return x + y if self.residual else y


class _EfficientNetB5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = _conv(3, STEM, 3, stride=2), _bn(STEM)
        stages, width = [], STEM
        for index, (repeats, kernel, stride, expansion, outputs) in enumerate(B5_STAGES):
            blocks: list[nn.Module] = []
            for repeat in range(repeats):
                if index == 0:
                    blocks.append(_DepthwiseSeparable(width, outputs, kernel))
                else:
                    blocks.append(
                        _InvertedResidual(width, outputs, kernel, stride if repeat == 0 else 1, expansion)
                    )
                width = outputs
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = _conv(width, HEAD)
        self.bn2 = _bn(HEAD)  # in the file; the decoder reads the head before it

    def forward(self, x: Tensor) -> list[Tensor]:
        """The outputs of stages 0, 1, 2 and 4 (1/2 .. 1/16 size) and of the head (1/32)."""
        x = F.silu(self.bn1(self.conv_stem(x)))
        taps = []
        for index, stage in enumerate(self.blocks):
            x = stage(x)
            if index in (0, 1, 2, 4):
                taps.append(x)
        return [*taps, self.conv_head(x)]


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.original_model = _EfficientNetB5()


class _Up(nn.Module):
    """Upsample to the skip's size, join it, two 3x3 convolutions with batch norm and leaky ReLU."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self._net = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.LeakyReLU(),
            nn.Conv2d(outputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.LeakyReLU(),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self._net(torch.cat([x, skip], dim=1))


def _refiner(inputs: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv1d(inputs, 128, 1), nn.ReLU()]
    layers += [nn.Conv1d(128, 128, 1), nn.ReLU(), nn.Conv1d(128, 128, 1), nn.ReLU(), nn.Conv1d(128, 4, 1)]
    return nn.Sequential(*layers)


def _unit_normals(estimate: Tensor) -> Tensor:
    """(x, y, z) scaled to unit length, kappa through elu + 1.01."""
    x, y, z, kappa = torch.split(estimate, 1, dim=1)
    length = torch.sqrt(x**2.0 + y**2.0 + z**2.0) + 1e-10
    return torch.cat([x / length, y / length, z / length, F.elu(kappa) + 1.0 + 0.01], dim=1)


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(HEAD, HEAD, 1)
        self.up1, self.up2 = _Up(HEAD + 176, 1024), _Up(1024 + 64, 512)
        self.up3, self.up4 = _Up(512 + 40, 256), _Up(256 + 24, 128)
        self.out_conv_res8 = nn.Conv2d(512, 4, 3, padding=1)
        self.out_conv_res4, self.out_conv_res2, self.out_conv_res1 = (
            _refiner(516),
            _refiner(260),
            _refiner(132),
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        half, quarter, eighth, sixteenth, head = features
        x8 = self.up2(self.up1(self.conv2(head), sixteenth), eighth)
        x4 = self.up3(x8, quarter)
        x2 = self.up4(x4, half)
        estimate = _unit_normals(self.out_conv_res8(x8))
        for refiner, x in ((self.out_conv_res4, x8), (self.out_conv_res2, x4), (self.out_conv_res1, x2)):
            joined = torch.cat([_doubled(x), _doubled(estimate)], dim=1)
            batch, channels, height, width = joined.shape
            refined = refiner(joined.view(batch, channels, -1))
            estimate = _unit_normals(refined).view(batch, 4, height, width)
        return estimate


def _doubled(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class NormalBaeNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = _Encoder()
        self.decoder = _Decoder()

    def forward(self, image: Tensor) -> Tensor:
        """[N, 4, H, W] (unit normal x, y, z and kappa) for ImageNet-normalised RGB; H, W multiples of 32."""
        return self.decoder(self.encoder.original_model(image))


def load_normal_bae(path: Path, allow_unsafe_pickle: bool = False) -> NormalBaeNetwork:
    """scannet.pt (or a .safetensors of it)."""
    return load_network(path, NormalBaeNetwork, "normal_bae", allow_unsafe_pickle, strip="module.")


@torch.no_grad()
def surface_normals(network: NormalBaeNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The normal map (HxWx3 uint8: x, y, z from -1..1 to 0..255) of an HxWx3 uint8 RGB image."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32) / 255.0
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    normals = network((pixels.permute(2, 0, 1)[None] - mean) / std)[0, :3].float()
    colours = ((normals + 1) * 0.5).clip(0, 1).permute(1, 2, 0).cpu().numpy()
    return (colours * 255.0).clip(0, 255).astype(np.uint8)
