"""A1111's latent upscale modes: resizing latents with torch's interpolation (hires fix, img2img's
"Just resize (latent upscale)")."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from modules.sumi.engine.errors import InvalidRequestError


@dataclass(frozen=True)
class LatentMode:
    mode: str  # torch.nn.functional.interpolate's mode
    antialias: bool = False


# A1111's names, in A1111's order (`shared.latent_upscale_modes`).
LATENT_MODES: dict[str, LatentMode] = {
    "Latent": LatentMode("bilinear"),
    "Latent (antialiased)": LatentMode("bilinear", True),
    "Latent (bicubic)": LatentMode("bicubic"),
    "Latent (bicubic antialiased)": LatentMode("bicubic", True),
    "Latent (nearest)": LatentMode("nearest"),
    "Latent (nearest-exact)": LatentMode("nearest-exact"),
}
DEFAULT_LATENT_MODE = "Latent"


def is_latent_mode(name: str | None) -> bool:
    return name in LATENT_MODES


def upscale_latents(latents: torch.Tensor, name: str, height: int, width: int) -> torch.Tensor:
    """`latents` (B, C, h, w) resized to (height, width) latent pixels with the named mode."""
    mode = LATENT_MODES.get(name)
    if mode is None:
        raise InvalidRequestError(
            f"unknown latent upscale mode {name!r}; choose from {', '.join(LATENT_MODES)}"
        )
    if mode.mode in ("nearest", "nearest-exact"):
        return F.interpolate(latents, size=(height, width), mode=mode.mode)
    return F.interpolate(latents, size=(height, width), mode=mode.mode, antialias=mode.antialias)
