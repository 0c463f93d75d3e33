"""The depth-merging network of "Boosting Monocular Depth" (Miangoleh et al., 2021): `leres/latest_net_G.pth`,
which sd-webui-controlnet's depth_leres++ uses to fuse two depth estimates of one picture.

A pix2pix U-Net over 1024x1024 maps: two channels in (the coarse estimate, the detailed one, each
stretched to -1..1), one out (tanh). Ten levels halve the size down to 1x1 and double it back, each
level's features concatenated with what came back from below. Convolutions are 4x4 with stride 2 and
no normalisation, hence no bias except on the last one. Widths: `ngf`, 2, 4, then 8 x `ngf` for the
deeper seven levels; the published file has ngf = 64 (80 M parameters), read here from the weights.

The layers keep the published names, nested one level per depth: `model.model.0.weight` (first
convolution), `model.model.1.model.1.weight` (the next level's), ..., `model.model.3.weight/bias` (the
last transposed convolution); a level's transposed convolution is its `model.5` (`model.3` at the bottom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.sumi.engine.controlnet.annotators.weights import load_network
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_state_dict

LEVELS = 10
SIDE = 2**LEVELS  # the maps' size: the bottom level is 1x1
_FIRST = "model.model.0.weight"


def _down(inputs: int, outputs: int) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, 4, stride=2, padding=1, bias=False)


def _up(inputs: int, outputs: int, bias: bool = False) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(inputs, outputs, 4, stride=2, padding=1, bias=bias)


class _Level(nn.Module):
    """One inner level: the input rectified (leaky), halved, through the deeper levels, doubled back,
    and concatenated after the rectified input.

    The published network keeps its layers at fixed places in one `model` sequence (rectifiers and
    empty normalisations between them), which the weight names count; placeholders hold those places.
    """

    def __init__(self, outer: int, inner: int, deeper: _Level | None) -> None:
        super().__init__()
        if deeper is None:
            layers = [nn.Identity(), _down(outer, inner), nn.Identity(), _up(inner, outer), nn.Identity()]
        else:
            layers = [nn.Identity(), _down(outer, inner), nn.Identity(), deeper]
            layers += [nn.Identity(), _up(2 * inner, outer), nn.Identity()]
        self.model = nn.Sequential(*layers)
        self.deeper = deeper is not None

    def forward(self, x: Tensor) -> Tensor:
        # The original's first layer is an in-place leaky ReLU on the very tensor it concatenates, so
        # the skip connection carries the rectified features.
        skip = F.leaky_relu(x, 0.2)
        x = self.model[1](skip)
        if self.deeper:
            x = self.model[3](x)
        x = self.model[5 if self.deeper else 3](F.relu(x))
        return torch.cat([skip, x], 1)


class _Outer(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width] + [8 * width] * (LEVELS - 3)
        deeper = _Level(widths[-1], widths[-1], None)
        for outer, inner in reversed(list(zip(widths[:-2], widths[1:-1], strict=True))):
            deeper = _Level(outer, inner, deeper)
        self.model = nn.Sequential(_down(2, width), deeper, nn.Identity(), _up(2 * width, 1, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        x = self.model[1](self.model[0](x))
        return torch.tanh(self.model[3](F.relu(x)))


class DepthMergeNetwork(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.model = _Outer(width)

    def forward(self, estimates: Tensor) -> Tensor:
        """[N, 1, 1024, 1024] merged depth in -1..1 from [N, 2, 1024, 1024] (coarse, detailed) in -1..1."""
        return self.model(estimates)


def load_depth_merge(path: Path, allow_unsafe_pickle: bool = False) -> DepthMergeNetwork:
    """latest_net_G.pth (or a .safetensors of it); the width comes from its first convolution."""
    state = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    first = state.get(_FIRST)
    if first is None or first.ndim != 4 or tuple(first.shape[1:]) != (2, 4, 4):
        raise ModelLoadError(
            f"{path.name} is not the depth-merging network (no {_FIRST} of shape [w, 2, 4, 4])"
        )
    width = int(first.shape[0])
    return load_network(
        path, lambda: DepthMergeNetwork(width), "depth merge", allow_unsafe_pickle, state=state
    )


def _stretched(estimate: np.ndarray) -> Tensor:
    """0..1 by the estimate's own range (zeros when flat), then -1..1; [1, 1, H, W]."""
    tensor = torch.from_numpy(np.ascontiguousarray(estimate))[None, None]
    low, high = tensor.min(), tensor.max()
    tensor = (tensor - low) / (high - low) if high > low else torch.zeros_like(tensor)
    return tensor * 2 - 1


@torch.no_grad()
def merge_depths(
    network: DepthMergeNetwork, coarse: np.ndarray, detailed: np.ndarray, device: torch.device
) -> np.ndarray:
    """The merged estimate (1024x1024 float32, 0..1) of two 1024x1024 estimates of one picture."""
    batch = torch.cat((_stretched(coarse), _stretched(detailed)), 1).to(device)
    merged = (network(batch).float() + 1) / 2
    return merged.squeeze().cpu().numpy()
