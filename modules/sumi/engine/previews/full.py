""" "Full": the model's own VAE decodes the preview, exactly as the final image is decoded, without the
fp32 retry (a preview never changes the VAE; a NaN preview is simply not shown)."""

from __future__ import annotations

import torch

from modules.sumi.engine.model import SDModel


def full_decode(model: SDModel, latents: torch.Tensor) -> torch.Tensor:
    """(B, 4, h, w) latents to the VAE's (B, 3, H, W) pixels in about [-1, 1]."""
    vae = model.vae
    z = latents.to(device=next(vae.parameters()).device, dtype=vae.dtype) / model.vae_scaling_factor
    # diffusers types `z` as the legacy torch.FloatTensor, which a Tensor is not
    return vae.decode(z, return_dict=False)[0]  # pyright: ignore[reportArgumentType]
