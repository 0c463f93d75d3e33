""" "TAESD": madebyollin's tiny autoencoder decoder, a full-size picture for about 1% of the VAE's work.

Users put the decoder files as they download them from madebyollin/taesd into `models/VAE-approx`:
`taesd_decoder.pth` (SD1/SD2) and `taesdxl_decoder.pth` (SDXL); Sumi never downloads them. The file is
the state dict of one `nn.Sequential` whose indices are the keys' first part:

    0 clamp (tanh(x/3)*3)   1 conv 4->64, 2 ReLU
    3-5 Block x3, 6 upsample x2, 7 conv (no bias)     (the same three times: 8-12, 13-17)
    18 Block, 19 conv 64->3

A Block is `relu(conv(x) + x)` with conv = 3x3, ReLU, 3x3, ReLU, 3x3 (keys `<i>.conv.0/2/4.weight|bias`);
all channels are 64, so the skip is the identity. The decoder takes the UNet's latents (already scaled)
and returns pixels in about [0, 1] at 8x the latent size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from modules.sumi.engine import files

SD_FILE = "taesd_decoder.pth"
SDXL_FILE = "taesdxl_decoder.pth"
WIDTH = 64
UPSAMPLINGS = 3


def _conv(n_in: int, n_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            _conv(channels, channels),
            nn.ReLU(),
            _conv(channels, channels),
            nn.ReLU(),
            _conv(channels, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + x)


def decoder(latent_channels: int = 4) -> nn.Sequential:
    """The decoder with random weights, laid out as the released files' keys expect."""
    layers: list[nn.Module] = [Clamp(), _conv(latent_channels, WIDTH), nn.ReLU()]
    for _ in range(UPSAMPLINGS):
        layers += [
            Block(WIDTH),
            Block(WIDTH),
            Block(WIDTH),
            nn.Upsample(scale_factor=2),
            _conv(WIDTH, WIDTH, False),
        ]
    layers += [Block(WIDTH), _conv(WIDTH, 3)]
    return nn.Sequential(*layers)


def file_name(sdxl: bool) -> str:
    return SDXL_FILE if sdxl else SD_FILE


def load(
    path: Path, dtype: torch.dtype = torch.float32, *, allow_unsafe_pickle: bool = False
) -> nn.Sequential:
    """The decoder with the weights of `path` (every key present, every shape right, all finite), in
    eval mode on the CPU."""
    state = files.read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    files.check_finite(state, path, "TAESD decoder")
    first = state.get("1.weight")
    channels = int(first.shape[1]) if first is not None and first.ndim == 4 else 4
    return files.load_weights(decoder(channels), state, "TAESD decoder", path, dtype)
