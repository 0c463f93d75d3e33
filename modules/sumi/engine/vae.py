"""Latents to pixels: full VAE decode with an automatic fp32 retry on NaN, and cheap live previews."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.model import SDModel

# Linear maps from the 4 latent channels to RGB, as A1111's "Approx cheap" preview uses.
_SD_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
_SDXL_LATENT_RGB = (
    (0.3448, 0.4168, 0.4395),
    (-0.1953, -0.0290, 0.0250),
    (0.1074, 0.0886, -0.0163),
    (-0.3730, -0.2499, -0.2088),
)


@torch.no_grad()
def decode(model: SDModel, latents: torch.Tensor, *, nan_fallback: bool = True) -> torch.Tensor:
    """Decode latents to images in [0, 1] (B, 3, H, W), float32 on the CPU.

    If the VAE gives NaNs in half precision (SDXL's VAE does), decode again in fp32 and keep the VAE
    in fp32 from then on, as A1111's `auto_vae_precision` does.
    """
    images = _decode_once(model, latents)
    if nan_fallback and torch.isnan(images).any() and model.vae.dtype != torch.float32:
        # diffusers' ModelMixin.to is @wraps(Module.to), typed as a plain callable that does not bind `self`
        model.vae.to(torch.float32)  # pyright: ignore[reportArgumentType]
        images = _decode_once(model, latents)
    return images.float().cpu()


def _decode_once(model: SDModel, latents: torch.Tensor) -> torch.Tensor:
    vae = model.vae
    z = latents.to(device=next(vae.parameters()).device, dtype=vae.dtype) / model.vae_scaling_factor
    # diffusers types `z` as the legacy torch.FloatTensor, which a Tensor is not
    pixels = vae.decode(z, return_dict=False)[0]  # pyright: ignore[reportArgumentType]
    return (pixels / 2 + 0.5).clamp(0, 1)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[0, 1] float images (B, 3, H, W) to PIL images, rounding as diffusers does."""
    arrays = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arrays]


def cheap_preview(model: SDModel, latents: torch.Tensor) -> Image.Image | None:
    """A fast, approximate picture of the first latent for live previews (no VAE run)."""
    if latents.shape[1] != 4 or torch.isnan(latents[:1]).any():
        return None
    coefs = torch.tensor(_SDXL_LATENT_RGB if model.is_sdxl else _SD_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), coefs)
    rgb = ((rgb + 1) / 2).clamp(0, 1)
    return Image.fromarray((rgb.numpy() * 255).astype(np.uint8))
