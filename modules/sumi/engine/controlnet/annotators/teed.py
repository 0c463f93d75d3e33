"""TEED soft edges ("Tiny and Efficient Edge Detector", Soria et al. 2023): `TEED/7_model.pth`, the
file sd-webui-controlnet uses for softedge_teed (58 K parameters).

RGB pixels in 0..255 go through two small conv blocks (the first halving the size), a max-pool and one
dense layer; each of the three levels is brought back to the image size by an up-sampling block
(1x1 conv, smish, transposed conv, once per halving), and a depthwise "double fusion" of the three gives a
fourth map. The four are averaged and squashed with a sigmoid, as for HED. The activation is smish,
x * tanh(log(1 + sigmoid(x))).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.edges import fused_strength
from modules.sumi.engine.controlnet.annotators.weights import load_network


def smish(x: Tensor) -> Tensor:
    return x * torch.tanh(torch.log(1 + torch.sigmoid(x)))


class Smish(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return smish(x)


class _DoubleConv(nn.Module):
    def __init__(self, inputs: int, width: int, stride: int = 1, activate_output: bool = True) -> None:
        super().__init__()
        self.activate_output = activate_output
        self.conv1 = nn.Conv2d(inputs, width, 3, padding=1, stride=stride)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(smish(self.conv1(x)))
        return smish(x) if self.activate_output else x


class _Pointwise(nn.Module):
    def __init__(self, inputs: int, outputs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _DenseLayer(nn.Module):
    """conv (padded 2), smish, conv (unpadded) on the smished input, averaged with the second input."""

    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, width, 3, padding=2)
        self.smish1 = Smish()
        self.conv2 = nn.Conv2d(width, width, 3)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return 0.5 * (self.conv2(self.smish1(self.conv1(smish(x)))) + skip)


class _DenseBlock(nn.Module):
    def __init__(self, inputs: int, width: int) -> None:
        super().__init__()
        self.denselayer1 = _DenseLayer(inputs, width)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.denselayer1(x, skip)


UPSAMPLING_PADDING = {1: 0, 2: 1}  # transposed-conv padding by number of halvings (kernel 2 ** halvings)


class _UpSampling(nn.Module):
    """Per halving: 1x1 conv (to 16 channels, the last to 1), smish, stride-2 transposed conv."""

    def __init__(self, inputs: int, halvings: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        kernel, padding = 2**halvings, UPSAMPLING_PADDING[halvings]
        for index in range(halvings):
            outputs = 1 if index == halvings - 1 else 16
            layers += [nn.Conv2d(inputs, outputs, 1), Smish()]
            layers.append(nn.ConvTranspose2d(outputs, outputs, kernel, stride=2, padding=padding))
            inputs = outputs
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class _DoubleFusion(nn.Module):
    """Depthwise 3x3 to 24 channels and again, summed over channels with the first, smished."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.DWconv1 = nn.Conv2d(inputs, inputs * 8, 3, padding=1, groups=inputs)
        self.DWconv2 = nn.Conv2d(inputs * 8, inputs * 8, 3, padding=1, groups=inputs * 8)

    def forward(self, x: Tensor) -> Tensor:
        first = self.DWconv1(smish(x))
        second = self.DWconv2(smish(first))
        return smish((second + first).sum(1, keepdim=True))


class TeedNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block_1 = _DoubleConv(3, 16, stride=2)
        self.block_2 = _DoubleConv(16, 32, activate_output=False)
        self.dblock_3 = _DenseBlock(32, 48)
        self.side_1 = _Pointwise(16, 32, stride=2)
        self.pre_dense_3 = _Pointwise(32, 48)
        self.up_block_1 = _UpSampling(16, 1)
        self.up_block_2 = _UpSampling(32, 1)
        self.up_block_3 = _UpSampling(48, 2)
        self.block_cat = _DoubleFusion(3)

    def forward(self, pixels: Tensor) -> list[Tensor]:
        """Four edge maps ([N, 1, H, W]) for RGB pixels in 0..255; H and W multiples of 4."""
        first = self.block_1(pixels)
        second = self.block_2(first)
        pooled = F.max_pool2d(second, 3, stride=2, padding=1)
        third = self.dblock_3(pooled + self.side_1(first), self.pre_dense_3(pooled))
        maps = [self.up_block_1(first), self.up_block_2(second), self.up_block_3(third)]
        return [*maps, self.block_cat(torch.cat(maps, dim=1))]


def load_teed(path: Path, allow_unsafe_pickle: bool = False) -> TeedNetwork:
    """7_model.pth (or a .safetensors of it)."""
    return load_network(path, TeedNetwork, "TEED", allow_unsafe_pickle)


@torch.no_grad()
def teed_edges(network: TeedNetwork, image: np.ndarray, device: torch.device, safe_steps: int) -> np.ndarray:
    """Edge strength (HxW uint8) of an HxWx3 uint8 RGB image, cut to `safe_steps` + 1 levels (0: not)."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32).permute(2, 0, 1)[None]
    maps = [edge[0, 0].float().cpu().numpy() for edge in network(pixels)]
    return fused_strength(maps, *image.shape[:2], steps=safe_steps)
