"""PiDiNet soft edges (Su et al., "Pixel Difference Networks"), the `table5_pidinet.pth` model that
sd-webui-controlnet uses for softedge_pidinet, softedge_pidisafe, scribble_pidinet and t2ia_sketch_pidi.

Its convolutions look at differences between pixels rather than at pixels. Three kinds, cycling through
the 16 layers in the published model's order (central, angular, radial, vanilla):

- central: each neighbour minus the centre, weighted (the response minus the centre times the kernel sum);
- angular: each neighbour minus the next one clockwise (the kernel minus its clockwise-shifted self);
- radial: a 5x5 ring minus the ring inside it, along the same eight directions (centre ignored).

Four stages (60, 120, 240, 240 wide, halving the size after the first) of depthwise pixel-difference
convolutions with 1x1 mixing and residual connections; each stage is reduced by a dilated module (CDCM,
dilations 5, 7, 9, 11) and a spatial attention (CSAM) to one channel, brought to the image size, and a
1x1 classifier fuses the four. The published file wraps the weights in `state_dict` with DataParallel's
`module.` prefix; both are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.edges import quantised
from modules.sumi.engine.controlnet.annotators.weights import load_network

WIDTH, DILATION_WIDTH = 60, 24
KINDS = ("central", "angular", "radial", "vanilla") * 4  # layer i uses KINDS[i]
CLOCKWISE = [3, 0, 1, 6, 4, 2, 7, 8, 5]  # for each 3x3 position, its clockwise neighbour's position
RING_OUTER = [0, 2, 4, 10, 14, 20, 22, 24]  # 5x5 positions of the eight directions, outer ring
RING_INNER = [6, 7, 8, 11, 13, 16, 17, 18]  # and the inner ring


def _central(x: Tensor, weight: Tensor, stride: int, groups: int) -> Tensor:
    centre = F.conv2d(x, weight.sum(dim=(2, 3), keepdim=True), stride=stride, groups=groups)
    return F.conv2d(x, weight, stride=stride, padding=1, groups=groups) - centre


def _angular(x: Tensor, weight: Tensor, stride: int, groups: int) -> Tensor:
    flat = weight.flatten(2)
    kernel = (flat - flat[:, :, CLOCKWISE]).view(weight.shape)
    return F.conv2d(x, kernel, stride=stride, padding=1, groups=groups)


def _radial(x: Tensor, weight: Tensor, stride: int, groups: int) -> Tensor:
    out, inputs = weight.shape[:2]
    ring = torch.zeros(out, inputs, 25, device=weight.device, dtype=weight.dtype)
    directions = weight.flatten(2)[:, :, 1:]
    ring[:, :, RING_OUTER] = directions
    ring[:, :, RING_INNER] = -directions
    return F.conv2d(x, ring.view(out, inputs, 5, 5), stride=stride, padding=2, groups=groups)


def _vanilla(x: Tensor, weight: Tensor, stride: int, groups: int) -> Tensor:
    return F.conv2d(x, weight, stride=stride, padding=1, groups=groups)


_CONVOLUTIONS: dict[str, Callable[[Tensor, Tensor, int, int], Tensor]] = {
    "central": _central,
    "angular": _angular,
    "radial": _radial,
    "vanilla": _vanilla,
}


class PixelDifferenceConv(nn.Module):
    """A bias-free 3x3 convolution of one of the four kinds."""

    def __init__(self, kind: str, inputs: int, outputs: int, groups: int = 1) -> None:
        super().__init__()
        self.kind, self.groups = kind, groups
        self.weight = nn.Parameter(torch.empty(outputs, inputs // groups, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: Tensor) -> Tensor:
        return _CONVOLUTIONS[self.kind](x, self.weight, 1, self.groups)


class _Block(nn.Module):
    """Depthwise pixel-difference conv, ReLU, 1x1 conv, plus the input (pooled and widened when the
    block halves the size)."""

    def __init__(self, kind: str, inputs: int, outputs: int, halve: bool = False) -> None:
        super().__init__()
        self.halve = halve
        if halve:
            self.shortcut = nn.Conv2d(inputs, outputs, 1)
        self.conv1 = PixelDifferenceConv(kind, inputs, inputs, groups=inputs)
        self.conv2 = nn.Conv2d(inputs, outputs, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.halve:
            x = F.max_pool2d(x, 2, 2)
        y = self.conv2(F.relu(self.conv1(x)))
        return y + (self.shortcut(x) if self.halve else x)


class _DilatedContext(nn.Module):
    """CDCM: ReLU, 1x1 conv, then four 3x3 convs dilated 5, 7, 9 and 11, summed."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 1)
        for index, dilation in enumerate((5, 7, 9, 11), start=1):
            conv = nn.Conv2d(outputs, outputs, 3, padding=dilation, dilation=dilation, bias=False)
            self.add_module(f"conv2_{index}", conv)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(F.relu(x))
        x1, x2, x3, x4 = (getattr(self, f"conv2_{i}")(x) for i in range(1, 5))
        return x1 + x2 + x3 + x4


class _SpatialAttention(nn.Module):
    """CSAM: the input times a sigmoid map from ReLU, 1x1 conv to 4 channels, 3x3 conv to 1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 1)
        self.conv2 = nn.Conv2d(4, 1, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.conv2(self.conv1(F.relu(x))))


class _Reduce(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


STAGES = ((WIDTH, WIDTH, 3), (WIDTH, WIDTH * 2, 4), (WIDTH * 2, WIDTH * 4, 4), (WIDTH * 4, WIDTH * 4, 4))


class PiDiNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.init_block = PixelDifferenceConv(KINDS[0], 3, WIDTH)
        layer = 1
        for stage, (inputs, width, blocks) in enumerate(STAGES, start=1):
            for index in range(1, blocks + 1):
                first = index == 1 and stage > 1
                block = _Block(KINDS[layer], inputs if first else width, width, halve=first)
                self.add_module(f"block{stage}_{index}", block)
                layer += 1
        self.dilations = nn.ModuleList(_DilatedContext(width, DILATION_WIDTH) for _, width, _ in STAGES)
        self.attentions = nn.ModuleList(_SpatialAttention(DILATION_WIDTH) for _ in STAGES)
        self.conv_reduces = nn.ModuleList(_Reduce(DILATION_WIDTH) for _ in STAGES)
        self.classifier = nn.Conv2d(len(STAGES), 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        """Edge probability [N, 1, H, W] for BGR pixels in 0..1."""
        height, width = image.shape[2:]
        x, stage_outputs = self.init_block(image), []
        for stage, (_, _, blocks) in enumerate(STAGES, start=1):
            for index in range(1, blocks + 1):
                x = getattr(self, f"block{stage}_{index}")(x)
            stage_outputs.append(x)
        edges = [
            F.interpolate(reduce(attend(dilate(x))), (height, width), mode="bilinear", align_corners=False)
            for x, dilate, attend, reduce in zip(
                stage_outputs, self.dilations, self.attentions, self.conv_reduces, strict=True
            )
        ]
        return torch.sigmoid(self.classifier(torch.cat(edges, dim=1)))


def load_pidinet(path: Path, allow_unsafe_pickle: bool = False) -> PiDiNetwork:
    """table5_pidinet.pth (or a .safetensors of it)."""
    return load_network(path, PiDiNetwork, "PiDiNet", allow_unsafe_pickle, strip="module.")


@torch.no_grad()
def pidinet_edges(
    network: PiDiNetwork, image: np.ndarray, device: torch.device, *, safe: bool = False, binary: bool = False
) -> np.ndarray:
    """Edge strength (HxW uint8) of an HxWx3 uint8 RGB image; `binary` keeps only edges over 0.5 (the
    T2I-Adapter sketch), `safe` cuts the strength to three levels."""
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    pixels = torch.from_numpy(bgr).to(device, torch.float32) / 255.0
    edges = network(pixels.permute(2, 0, 1)[None])[0, 0].float().cpu().numpy()
    if binary:
        edges = edges > 0.5
    if safe:
        edges = quantised(edges)
    return (edges * 255.0).clip(0, 255).astype(np.uint8)
