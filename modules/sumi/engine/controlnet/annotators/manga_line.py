"""Manga line extraction (`manga_line/erika.pth`, what sd-webui-controlnet's lineart_anime_denoise runs):
a residual U-Net on the grey picture (0..255, not normalised) that draws clean dark lines on white.

Every convolution is preceded by batch norm (eps 1e-3) and LeakyReLU 0.2 ("pre-activation"). Going down,
five stages of 2, 3, 5, 7 and 12 residual blocks, 24 to 384 wide, each stage but the first ending with a
stride-2 block; going up, four stages of 7, 5, 3 and 2 blocks whose first block upsamples (nearest) after
its convolution, each stage's output added to the same-sized stage going down; then 2 blocks at 16 and a
1x1 convolution to one channel. Layers sit where the published file names them
(`block<i>.model.<j>.conv1.model.<k>`, `res<i>`, `conv15`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network
from modules.sumi.engine.files import read_state_dict

DOWN = ((1, 24, 2), (24, 48, 3), (48, 96, 5), (96, 192, 7), (192, 384, 12))  # (in, out, blocks)
UP = ((384, 192, 7), (192, 96, 5), (96, 48, 3), (48, 24, 2))


def _pre_activated(
    inputs: int, outputs: int, kernel: int = 3, stride: int = 1, up: bool = False
) -> nn.Module:
    """BN -> LeakyReLU -> conv (-> nearest 2x upsampling), as a module whose `model` holds the layers."""
    layers: list[nn.Module] = [
        nn.BatchNorm2d(inputs, eps=1e-3),
        nn.LeakyReLU(0.2),
        nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=kernel // 2),
    ]
    if up:
        layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
    return _Wrapped(nn.Sequential(*layers))


class _Wrapped(nn.Module):
    def __init__(self, model: nn.Sequential | None) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        assert self.model is not None
        return self.model(x)


class _Shortcut(nn.Module):
    """x + y, x first brought to y's width and size by a 1x1 convolution (and upsampling) when they differ."""

    def __init__(self, inputs: int, outputs: int, stride: int = 1, up: bool = False) -> None:
        super().__init__()
        self.model: nn.Sequential | None = None
        if inputs != outputs or (stride != 1 and not up):
            layers: list[nn.Module] = [nn.Conv2d(inputs, outputs, 1, stride=stride)]
            if up:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return (x if self.model is None else self.model(x)) + y


class _Block(nn.Module):
    """Two pre-activated 3x3 convolutions and a shortcut; `stride` 2 halves, `up` doubles the size."""

    def __init__(self, inputs: int, outputs: int, stride: int = 1, up: bool = False) -> None:
        super().__init__()
        self.conv1 = _pre_activated(inputs, outputs, stride=stride, up=up)
        self.residual = _pre_activated(outputs, outputs)
        self.shortcut = _Shortcut(inputs, outputs, stride, up)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x, self.residual(self.conv1(x)))


def _down_stage(inputs: int, outputs: int, blocks: int, first: bool = False) -> _Wrapped:
    """`blocks` blocks; the last halves the size unless this is the first stage."""
    return _Wrapped(
        nn.Sequential(
            *(
                _Block(
                    inputs if i == 0 else outputs, outputs, stride=2 if i == blocks - 1 and not first else 1
                )
                for i in range(blocks)
            )
        )
    )


def _up_stage(inputs: int, outputs: int, blocks: int) -> _Wrapped:
    """`blocks` blocks; the first doubles the size."""
    return _Wrapped(
        nn.Sequential(
            *(_Block(inputs, outputs, up=True) if i == 0 else _Block(outputs, outputs) for i in range(blocks))
        )
    )


class MangaLineNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for i, (inputs, outputs, blocks) in enumerate(DOWN):
            self.add_module(f"block{i}", _down_stage(inputs, outputs, blocks, first=i == 0))
        for i, (inputs, outputs, blocks) in enumerate(UP):
            self.add_module(f"block{5 + i}", _up_stage(inputs, outputs, blocks))
            self.add_module(f"res{i + 1}", _Shortcut(outputs, outputs))
        self.block9 = _down_stage(24, 16, 2, first=True)
        self.conv15 = _pre_activated(16, 1, kernel=1)

    def forward(self, grey: Tensor) -> Tensor:
        """[N, 1, H, W] in 0..255 (H and W multiples of 16) -> the line drawing, about 0..255, white paper."""
        skips = []
        x = grey
        for i in range(5):
            x = getattr(self, f"block{i}")(x)
            skips.append(x)
        for i in range(4):
            x = getattr(self, f"block{5 + i}")(x)
            x = getattr(self, f"res{i + 1}")(skips[3 - i], x)
        return self.conv15(self.block9(x))


def load_manga_line(path: Path, allow_unsafe_pickle: bool = False) -> MangaLineNetwork:
    """erika.pth (or a .safetensors of it); a DataParallel `module.` prefix is dropped, and batch-norm
    step counters that an older file lacks are filled in (inference does not read them)."""
    state = {
        k.removeprefix("module."): v
        for k, v in read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle).items()
    }
    for key in [k for k in state if k.endswith(".running_var")]:
        state.setdefault(key.replace(".running_var", ".num_batches_tracked"), torch.tensor(0))
    return load_network(path, MangaLineNetwork, "manga_line", allow_unsafe_pickle, state=state)


@torch.no_grad()
def manga_lines(network: MangaLineNetwork, image: np.ndarray, device: torch.device) -> np.ndarray:
    """White lines on black (HxW uint8) for an HxWx3 uint8 RGB image whose sides are multiples of 16."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    drawn = network(torch.from_numpy(grey).to(device, torch.float32)[None, None])[0, 0]
    return (255 - drawn.float().cpu().numpy()).clip(0, 255).astype(np.uint8)
