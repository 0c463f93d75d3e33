"""Latents to pixels: full VAE decode with an automatic fp32 retry on NaN (live previews: engine.previews)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine import nan_check as nans
from modules.sumi.engine.accel import compiled, tiled_vae
from modules.sumi.engine.model import SDModel


@torch.no_grad()
def decode(
    model: SDModel,
    latents: torch.Tensor,
    *,
    nan_fallback: bool = True,
    nan_check: bool = False,
    seeds: Sequence[int] = (),
    tiling: tiled_vae.TilingPolicy | None = None,
    tiled: list[tiled_vae.Tiled] | None = None,
) -> torch.Tensor:
    """Decode latents to images in [0, 1] (B, 3, H, W), float32 on the CPU.

    `tiling` (engine.accel.tiled_vae) decodes in tiles when it says so, when the whole image would not
    fit in free memory ("Auto"), or after the plain decode ran out of memory; each tiled pass is
    appended to `tiled`. None: one plain pass, as before.

    If the VAE gives NaN or infinity in half precision (SDXL's VAE does), and `nan_fallback` (A1111's
    `auto_vae_precision`), decode again in fp32 and keep the VAE in fp32 from then on; the caller sees
    it by `model.vae.dtype`. With `nan_check`, pixels that are still not finite raise NansException
    ("...produced in VAE.", naming the `seeds` of the images) instead of becoming black.
    """
    if nan_fallback:
        pixels = decode_raw(model, latents, tiling=tiling, tiled=tiled)
    else:
        pixels = _decode_once(model, latents, tiling, tiled)
    if nan_check:
        nans.check_output(pixels, "vae", model.vae.dtype, seeds)
    return (pixels / 2 + 0.5).clamp(0, 1).float().cpu()


@torch.no_grad()
def decode_raw(
    model: SDModel,
    latents: torch.Tensor,
    *,
    tiling: tiled_vae.TilingPolicy | None = None,
    tiled: list[tiled_vae.Tiled] | None = None,
) -> torch.Tensor:
    """The VAE's output for sampler-scaled latents, about [-1, 1], on the model's device in the VAE's
    dtype and not clamped (A1111's `decode_first_stage`). A half VAE that gives NaN or infinity decodes
    again in fp32 and stays in fp32 (`decode`'s `nan_fallback`)."""
    pixels = _decode_once(model, latents, tiling, tiled)
    if (
        model.vae.dtype != torch.float32
        and nans.bad_images(pixels)
        and not nans.bad_images(latents)  # fp32 cannot mend latents that are already NaN
    ):
        torch.nn.Module.to(model.vae, torch.float32)  # without diffusers' keep-in-fp32 warning
        pixels = _decode_once(model, latents, tiling, tiled)
    return pixels


def _decode_once(
    model: SDModel,
    latents: torch.Tensor,
    tiling: tiled_vae.TilingPolicy | None = None,
    tiled: list[tiled_vae.Tiled] | None = None,
) -> torch.Tensor:
    """The VAE's raw output, about [-1, 1]; not clamped, so infinities stay visible."""
    vae = model.vae
    z = latents.to(device=model.device, dtype=vae.dtype) / model.vae_scaling_factor

    def plain(z: torch.Tensor) -> torch.Tensor:
        # diffusers types `z` as the legacy torch.FloatTensor, which a Tensor is not
        return vae.decode(z, return_dict=False)[0]  # pyright: ignore[reportArgumentType]

    fn = compiled.vae_decoder(model) or plain  # the compiled fast path (one graph per tile shape) when on
    return tiled_vae.run("decode", fn, z, policy=tiling, vae=vae, scale=model.vae_scale, events=tiled)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[0, 1] float images (B, 3, H, W) to PIL images, rounding as diffusers does."""
    arrays = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arrays]
