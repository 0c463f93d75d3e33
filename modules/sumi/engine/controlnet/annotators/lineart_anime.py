"""Anime line art: the pix2pix U-Net generator of `lineart_anime/netG.pth` (the file
sd-webui-controlnet uses for lineart_anime).

Eight stride-2 4x4 convolutions down (64, 128, 256, then 512 wide) and eight transposed ones up, each
level's output concatenated with its input (the skip connection); LeakyReLU 0.2 going down, ReLU going
up, instance norms without learnt parameters, tanh at the end. The picture is scaled to multiples of 256
(bicubic) for it, its drawing scaled back. The layers sit where the published file indexes them:
`model.model.<i>` at the outermost level, `...model.<3>.model.<i>` one level in.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network

STEM, LEVELS, SIDE_STEP = 64, 8, 256


class _Level(nn.Module):
    """One U-Net level: down, the inner levels, up; the input concatenated to the output."""

    def __init__(self, outer: int, inner: int, inside: _Level | None, inputs: int | None = None) -> None:
        super().__init__()
        self.outermost = inputs is not None
        down = nn.Conv2d(inputs or outer, inner, 4, stride=2, padding=1)
        if self.outermost:
            assert inside is not None
            layers = [down, inside, nn.ReLU(), nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)]
            layers.append(nn.Tanh())
        elif inside is None:  # innermost
            layers = [nn.LeakyReLU(0.2), down, nn.ReLU()]
            layers += [nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1), nn.InstanceNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2), down, nn.InstanceNorm2d(inner), inside, nn.ReLU()]
            layers += [nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1), nn.InstanceNorm2d(outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class LineartAnimeNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        widest = STEM * 8
        level = _Level(widest, widest, None)
        for _ in range(LEVELS - 5):
            level = _Level(widest, widest, level)
        for outer in (STEM * 4, STEM * 2, STEM):
            level = _Level(outer, outer * 2, level)
        self.model = _Level(1, STEM, level, inputs=3)

    def forward(self, image: Tensor) -> Tensor:
        """[N, 1, H, W] in -1..1 (1 = white paper) for RGB in -1..1; H and W multiples of 256."""
        return self.model(image)


def load_lineart_anime(path: Path, allow_unsafe_pickle: bool = False) -> LineartAnimeNetwork:
    """netG.pth (or a .safetensors of it); a DataParallel `module.` prefix is dropped."""
    return load_network(path, LineartAnimeNetwork, "lineart_anime", allow_unsafe_pickle, strip="module.")


@torch.no_grad()
def anime_line_drawing(network: LineartAnimeNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """White lines on black (HxW uint8) for an HxWx3 uint8 RGB image."""
    height, width = image.shape[:2]
    size = (SIDE_STEP * -(-width // SIDE_STEP), SIDE_STEP * -(-height // SIDE_STEP))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    pixels = torch.from_numpy(scaled).to(device, torch.float32) / 127.5 - 1.0
    paper = network(pixels.permute(2, 0, 1)[None])[0, 0] * 127.5 + 127.5
    drawn = cv2.resize(paper.float().cpu().numpy(), (width, height), interpolation=cv2.INTER_CUBIC)
    return 255 - drawn.clip(0, 255).astype(np.uint8)
