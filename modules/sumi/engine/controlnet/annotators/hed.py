"""HED soft edges, lllyasviel's Apache-2.0 model (`hed/ControlNetHED.pth`, the file sd-webui-controlnet
uses for softedge_hed, softedge_hedsafe and scribble_hed).

The network takes RGB pixels in 0..255 minus a learnt per-channel offset (`norm`), runs five VGG-style
stages (two or three 3x3 convolutions with ReLU, max-pooling before every stage but the first) and
projects each stage to one channel. The five side outputs are brought to the image size (bilinear),
averaged and squashed with a sigmoid: the edge strength.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.edges import fused_strength
from modules.sumi.engine.controlnet.annotators.weights import load_network

# (input channels, width, convolutions) of each stage; the file's keys are block1..block5
STAGES = ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))


class _Stage(nn.Module):
    def __init__(self, inputs: int, width: int, convolutions: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *(nn.Conv2d(inputs if i == 0 else width, width, 3, padding=1) for i in range(convolutions))
        )
        self.projection = nn.Conv2d(width, 1, 1)

    def forward(self, x: Tensor, pool: bool) -> tuple[Tensor, Tensor]:
        if pool:
            x = F.max_pool2d(x, 2, 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        return x, self.projection(x)


class HedNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.Parameter(torch.zeros(1, 3, 1, 1))
        for index, stage in enumerate(STAGES, start=1):
            self.add_module(f"block{index}", _Stage(*stage))

    def forward(self, pixels: Tensor) -> list[Tensor]:
        """The five side outputs ([N, 1, h, w] at each stage's resolution) for RGB pixels in 0..255."""
        x, sides = pixels - self.norm, []
        for index in range(1, len(STAGES) + 1):
            x, side = getattr(self, f"block{index}")(x, pool=index > 1)
            sides.append(side)
        return sides


def load_hed(path: Path, allow_unsafe_pickle: bool = False) -> HedNetwork:
    """ControlNetHED.pth (or a .safetensors of it); ModelLoadError naming the keys when it is another net."""
    return load_network(path, HedNetwork, "HED", allow_unsafe_pickle)


@torch.no_grad()
def soft_edges(
    network: HedNetwork, image: np.ndarray, device: torch.device, safe: bool = False
) -> np.ndarray:
    """Edge strength (HxW uint8) of an HxWx3 uint8 RGB image; `safe` cuts it to three levels."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device, torch.float32).permute(2, 0, 1)[None]
    sides = [side[0, 0].float().cpu().numpy() for side in network(pixels)]
    return fused_strength(sides, *image.shape[:2], steps=2 if safe else 0)
