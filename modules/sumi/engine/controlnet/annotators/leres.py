"""Relative depth: LeReS (Yin et al., "Learning to Recover 3D Scene Shape") from `leres/res101.pth`, the file
sd-webui-controlnet uses for `depth_leres`.

A ResNeXt-101 (32x8d) encoder and a decoder that refines its four stages coarse to fine (feature
transfer blocks: a convolution with a residual branch; each finer stage's features added to the
upsampled coarser result) to a depth map at the input size. The extension turns it into a map as
16-bit then 8-bit grey, optionally cuts the nearest ("Remove Near %") before inverting so near is
white, and cuts the background ("Remove Background %") after.

The layers keep the published names (`depth_model.encoder_modules.encoder.layer3.22.conv2.weight`,
`depth_model.decoder_modules.ffm1.ftb2.conv_branch.2.running_var`); the file wraps them in
`depth_model`, sometimes with DataParallel's `module.` prefix.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

STAGES = ((64, 3, 1), (128, 4, 2), (256, 23, 2), (512, 3, 2))  # (planes, blocks, stride): ResNeXt-101
GROUPS, GROUP_WIDTH, EXPANSION = 32, 8, 4
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Bottleneck(nn.Module):
    def __init__(self, inputs: int, planes: int, stride: int) -> None:
        super().__init__()
        width = planes * GROUP_WIDTH // 64 * GROUPS
        outputs = planes * EXPANSION
        self.conv1, self.bn1 = nn.Conv2d(inputs, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, groups=GROUPS, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, outputs, 1, bias=False), nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride, bias=False), nn.BatchNorm2d(outputs)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNeXt101(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False), nn.BatchNorm2d(64)
        inputs = 64
        for index, (planes, blocks, stride) in enumerate(STAGES, start=1):
            layer = []
            for block in range(blocks):
                layer.append(_Bottleneck(inputs, planes, stride if block == 0 else 1))
                inputs = planes * EXPANSION
            setattr(self, f"layer{index}", nn.Sequential(*layer))

    def forward(self, x: Tensor) -> list[Tensor]:
        """The four stages' outputs (1/4 .. 1/32 size)."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, padding=1)
        stages = []
        for index in range(1, len(STAGES) + 1):
            x = getattr(self, f"layer{index}")(x)
            stages.append(x)
        return stages


class _FeatureTransfer(nn.Module):
    """A 3x3 convolution and ReLU, then itself plus a residual branch (conv, BN, ReLU, conv), then ReLU."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, padding=1)
        self.conv_branch = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(outputs, outputs, 3, padding=1),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.Conv2d(outputs, outputs, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        # The original's branch opens with an in-place ReLU on the very tensor it adds to, so the
        # shortcut carries the rectified features.
        x = F.relu(self.conv1(x))
        return F.relu(x + self.conv_branch(x))


def _doubled(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class _Fusion(nn.Module):
    """A finer stage through a transfer block, plus the coarser result, through another, doubled."""

    def __init__(self, inputs: int, width: int = 256) -> None:
        super().__init__()
        self.ftb1, self.ftb2 = _FeatureTransfer(inputs, width), _FeatureTransfer(width, width)

    def forward(self, finer: Tensor, coarser: Tensor) -> Tensor:
        return _doubled(self.ftb2(self.ftb1(finer) + coarser))


class _Output(nn.Module):
    def __init__(self, inputs: int = 256) -> None:
        super().__init__()
        self.adapt_conv = nn.Sequential(
            nn.Conv2d(inputs, inputs // 2, 3, padding=1),
            nn.BatchNorm2d(inputs // 2),
            nn.ReLU(),
            nn.Conv2d(inputs // 2, 1, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return _doubled(self.adapt_conv(x))


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _FeatureTransfer(2048, 512)
        self.conv1 = nn.Conv2d(512, 256, 3, padding=1)
        self.ffm2, self.ffm1, self.ffm0 = _Fusion(1024), _Fusion(512), _Fusion(256)
        self.outconv = _Output()

    def forward(self, stages: list[Tensor]) -> Tensor:
        quarter, eighth, sixteenth, last = stages
        x = _doubled(self.conv1(self.conv(last)))
        return self.outconv(self.ffm0(quarter, self.ffm1(eighth, self.ffm2(sixteenth, x))))


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = _ResNeXt101()


class _DepthModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder_modules = _Encoder()
        self.decoder_modules = _Decoder()


class LeresNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.depth_model = _DepthModel()

    def forward(self, image: Tensor) -> Tensor:
        """[N, 1, H, W] depth (far is large) for a normalised [N, 3, H, W] image, H and W multiples of 32."""
        model = self.depth_model
        return model.decoder_modules(model.encoder_modules.encoder(image))


def load_leres(path: Path, allow_unsafe_pickle: bool = False) -> LeresNetwork:
    """res101.pth (or a .safetensors of it)."""
    return load_network(path, LeresNetwork, "LeReS", allow_unsafe_pickle, strip="module.")


def _network_input(bgr: np.ndarray) -> Tensor:
    """As the extension: normalised without first dividing by 255; [1, 3, H, W]."""
    pixels = torch.from_numpy(np.ascontiguousarray(bgr.astype(np.float32))).permute(2, 0, 1)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((pixels - mean) / std)[None]


@torch.no_grad()
def leres_prediction(
    network: LeresNetwork, image: np.ndarray, device: torch.device, side: int = 0
) -> np.ndarray:
    """LeReS's raw depth (HxW float32, far is large) of an HxWx3 uint8 RGB picture, reversed to BGR as
    the extension does; with `side` the network sees the picture scaled to a side x side square (the
    boost's fixed sizes, a multiple of 32) and its depth comes back to the picture's size."""
    bgr = image[:, :, ::-1]
    if side:
        bgr = cv2.resize(np.ascontiguousarray(bgr), (side, side))
    depth = network(_network_input(bgr).to(device)).float().squeeze().cpu().numpy()
    if side:
        depth = cv2.resize(depth, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
    return depth


def depth_gray(depth: np.ndarray, remove_near: float, remove_background: float) -> np.ndarray:
    """The extension's LeReS map (HxW uint8, near = white) of a raw depth: stretched to 16 bits then
    8, the nearest cut ("Remove Near %") before inverting, the background ("Remove Background %") after;
    both in percent of the grey range (0: off)."""
    low, high = depth.min(), depth.max()
    if high - low > np.finfo("float").eps:
        wide = (65535 * (depth - low) / (high - low)).astype(np.uint16)
    else:
        wide = np.zeros(depth.shape, np.uint16)
    gray = cv2.convertScaleAbs(wide, alpha=255.0 / 65535.0)
    if remove_near != 0:
        gray = cv2.threshold(gray, remove_near / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    gray = cv2.bitwise_not(gray)
    if remove_background != 0:
        gray = cv2.threshold(gray, remove_background / 100 * 255, 255, cv2.THRESH_TOZERO)[1]
    return gray


def leres_depth(
    network: LeresNetwork,
    image: np.ndarray,
    device: torch.device,
    remove_near: float,
    remove_background: float,
) -> np.ndarray:
    """depth_leres's map (HxW uint8, near = white) of an HxWx3 uint8 RGB picture whose sides are
    multiples of 32; the two thresholds in percent (0: off)."""
    return depth_gray(leres_prediction(network, image, device), remove_near, remove_background)
