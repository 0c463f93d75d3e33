""" "Approx NN": A1111's VAEApprox, eight small convolutions that turn latents into a half-size picture.

The weights are A1111's release files, which users copy into `models/VAE-approx`: `model.pt` for SD1/SD2
and `vaeapprox-sdxl.pt` for SDXL (state-dict keys `conv1.weight` ... `conv8.bias`). Sumi never downloads
them. The input is upsampled 2x and padded by 11 on each side, which the unpadded convolutions (7, 5
and six 3x3: 22 pixels in all) take back, so the output is twice the latent size (1/4 of the image).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from modules.sumi.engine import files
from modules.sumi.engine.errors import ModelLoadError

SD_FILE = "model.pt"
SDXL_FILE = "vaeapprox-sdxl.pt"

# (in, out, kernel) of conv1..conv8
LAYERS = ((8, 7), (16, 5), (32, 3), (64, 3), (32, 3), (16, 3), (8, 3), (3, 3))
PAD = 11
NEGATIVE_SLOPE = 0.1


class VAEApprox(nn.Module):
    def __init__(self, latent_channels: int = 4) -> None:
        super().__init__()
        channels = latent_channels
        for index, (out, kernel) in enumerate(LAYERS, start=1):
            self.add_module(f"conv{index}", nn.Conv2d(channels, out, kernel))
            channels = out

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents to (B, 3, 2h, 2w) pixels in about [-1, 1]."""
        x = F.interpolate(latents, size=(latents.shape[2] * 2, latents.shape[3] * 2))
        x = F.pad(x, (PAD, PAD, PAD, PAD))
        for conv in self.children():
            x = F.leaky_relu(conv(x), NEGATIVE_SLOPE)
        return x


def file_name(sdxl: bool) -> str:
    return SDXL_FILE if sdxl else SD_FILE


def load(path: Path, dtype: torch.dtype = torch.float32, *, allow_unsafe_pickle: bool = False) -> VAEApprox:
    """The network with the weights of `path` (every key present, every shape right, all finite), in
    eval mode on the CPU."""
    state = files.read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    files.check_finite(state, path, "VAE approximation")
    model = VAEApprox(latent_channels=_latent_channels(state, path))
    return files.load_weights(model, state, "VAE approximation", path, dtype)


def _latent_channels(state: files.StateDict, path: Path) -> int:
    weight = state.get("conv1.weight")
    if weight is None or weight.ndim != 4:
        raise ModelLoadError(f"{path}: not a VAE approximation file (it has no conv1.weight of 4 dimensions)")
    return int(weight.shape[1])
