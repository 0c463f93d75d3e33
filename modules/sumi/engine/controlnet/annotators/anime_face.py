"""Anime face segmentation (`anime_face_segment/UNet.pth`, what sd-webui-controlnet's seg_anime_face runs):
a U-Net on a MobileNetV2 encoder that labels each pixel background, hair, eye, mouth, face, skin or
clothes, drawn in the extension's seven colours.

The encoder is torchvision's MobileNetV2 `features[0..16]` (its tensors stored under `en_block0..4` as
the extension groups them: 16, 24, 32, 96 and 160 wide, at 1/2 to 1/32 of the picture); each decoder
step doubles the size (nearest), convolves (3x3), instance-normalises, applies LeakyReLU 0.1, is resized
(bilinear, corners aligned) to the encoder level it joins and concatenated with it; the last step gives
the seven class scores. The picture is first scaled (bicubic) so its short side is 512, as the extension's
torchvision Resize(512) does, and read as 0..1 without normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

CLASSES = 7
SHORT_SIDE = 512
PALETTE = np.array(
    [(255, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255), (0, 255, 0), (0, 255, 255), (255, 0, 255)],
    dtype=np.uint8,
)  # background, hair, eye, mouth, face, skin, clothes
# MobileNetV2's inverted residual stages: (expansion, width, repeats, first stride)
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2))
_GROUPS = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 17))  # features[a:b] in en_block0..4
_DECODER = ((160, 96), (192, 32), (64, 24), (48, 16))  # de_block4..1: (in, out)


def _conv_bn_relu6(
    inputs: int, outputs: int, kernel: int = 3, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU6(),
    )


class _InvertedResidual(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, no activation); the input added when shapes match."""

    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        self.residual = stride == 1 and inputs == outputs
        layers: list[nn.Module] = [] if expansion == 1 else [_conv_bn_relu6(inputs, hidden, kernel=1)]
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, outputs, 1, bias=False),
            nn.BatchNorm2d(outputs),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def _mobilenet_features() -> list[nn.Module]:
    features: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
    width = 32
    for expansion, outputs, repeats, stride in _STAGES:
        for i in range(repeats):
            features.append(_InvertedResidual(width, outputs, stride if i == 0 else 1, expansion))
            width = outputs
    return features


def _up(inputs: int, outputs: int, last: bool = False) -> nn.Sequential:
    conv = nn.Conv2d(inputs, outputs, 3, padding=1)
    if last:
        return nn.Sequential(nn.UpsamplingNearest2d(scale_factor=2), conv, nn.Softmax2d())
    return nn.Sequential(
        nn.UpsamplingNearest2d(scale_factor=2),
        conv,
        nn.InstanceNorm2d(outputs),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.2),
    )


class AnimeFaceNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        features = _mobilenet_features()
        for i, (start, end) in enumerate(_GROUPS):
            self.add_module(f"en_block{i}", nn.Sequential(*features[start:end]))
        for level, (inputs, outputs) in zip((4, 3, 2, 1), _DECODER, strict=True):
            self.add_module(f"de_block{level}", _up(inputs, outputs))
        self.de_block0 = _up(32, CLASSES, last=True)

    def forward(self, x: Tensor) -> Tensor:
        """Class probabilities [N, 7, H, W] for pictures [N, 3, H, W] in 0..1."""
        skips = []
        for i in range(5):
            x = getattr(self, f"en_block{i}")(x)
            skips.append(x)
        for level in (4, 3, 2, 1):
            joined = skips[level - 1]
            up = getattr(self, f"de_block{level}")(x)
            up = F.interpolate(up, size=joined.shape[2:], mode="bilinear", align_corners=True)
            x = torch.cat((up, joined), 1)
        return self.de_block0(x)


def load_anime_face(path: Path, allow_unsafe_pickle: bool = False) -> AnimeFaceNetwork:
    """UNet.pth (or a .safetensors of it); a DataParallel `module.` prefix is dropped."""
    return load_network(path, AnimeFaceNetwork, "anime_face_segment", allow_unsafe_pickle, strip="module.")


def _short_side_512(image: np.ndarray) -> np.ndarray:
    """torchvision's Resize(512) on a PIL picture: the short side to 512, the long one truncated, bicubic."""
    height, width = image.shape[:2]
    if height <= width:
        size = (int(SHORT_SIDE * width / height), SHORT_SIDE)
    else:
        size = (SHORT_SIDE, int(SHORT_SIDE * height / width))
    if size == (width, height):
        return image
    return np.array(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


@torch.no_grad()
def anime_face_segments(network: AnimeFaceNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """The segmentation in the seven colours (HxWx3 uint8) at the picture's size once its short side is 512."""
    scaled = _short_side_512(image)
    pixels = (
        torch.from_numpy(np.ascontiguousarray(scaled)).to(device, torch.float32).permute(2, 0, 1)[None]
        / 255.0
    )
    classes = network(pixels)[0].argmax(dim=0).cpu().numpy()
    return PALETTE[classes]
