"""Line drawings from photos: lllyasviel's "informative drawings" generator (`lineart/sk_model.pth` for
lineart_realistic, `lineart/sk_model2.pth` for lineart_coarse, the files sd-webui-controlnet uses).

A small image-to-image network: a 7x7 stem, two stride-2 convolutions, three residual blocks at a
quarter of the size, two transposed convolutions back up and a 7x7 head with a sigmoid; instance norms
without learnt parameters and reflection padding throughout. It draws dark lines on white as 1 = white;
the preprocessors invert that (white lines on black, as ControlNet's lineart models expect).

The layers sit in `nn.Sequential`s at the positions the published files index (`model0.1.weight`,
`model2.0.conv_block.5.weight`, ...), so the files load as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

STEM, RESIDUAL_BLOCKS = 64, 3


def _norm_relu(channels: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(channels), nn.ReLU()]


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            *_norm_relu(channels),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class LineartNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widths = (STEM, STEM * 2, STEM * 4)
        self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, STEM, 7), *_norm_relu(STEM))
        down: list[nn.Module] = []
        for inputs, outputs in zip(widths, widths[1:], strict=False):
            down += [nn.Conv2d(inputs, outputs, 3, stride=2, padding=1), *_norm_relu(outputs)]
        self.model1 = nn.Sequential(*down)
        self.model2 = nn.Sequential(*(_Residual(widths[-1]) for _ in range(RESIDUAL_BLOCKS)))
        up: list[nn.Module] = []
        for inputs, outputs in zip(widths[::-1], widths[::-1][1:], strict=False):
            up += [nn.ConvTranspose2d(inputs, outputs, 3, stride=2, padding=1, output_padding=1)]
            up += _norm_relu(outputs)
        self.model3 = nn.Sequential(*up)
        self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(STEM, 1, 7), nn.Sigmoid())

    def forward(self, image: Tensor) -> Tensor:
        """[N, 1, H, W] in 0..1 (1 = white paper) for RGB in 0..1; H and W multiples of 4."""
        return self.model4(self.model3(self.model2(self.model1(self.model0(image)))))


def load_lineart(path: Path, allow_unsafe_pickle: bool = False) -> LineartNetwork:
    """sk_model.pth / sk_model2.pth (or a .safetensors of either)."""
    return load_network(path, LineartNetwork, "lineart", allow_unsafe_pickle)


@torch.no_grad()
def line_drawing(network: LineartNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """White lines on black (HxW uint8) for an HxWx3 uint8 RGB image."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32) / 255.0
    paper = network(pixels.permute(2, 0, 1)[None])[0, 0].float().cpu().numpy()
    return 255 - (paper * 255.0).clip(0, 255).astype(np.uint8)
