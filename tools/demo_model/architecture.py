"""The demo model's architecture: an SD1-family model small enough to train on two CPU cores in an hour.

128x128 images, 16x16x4 latents (a four-level VAE, 8x down), a (64, 128, 136) UNet with cross-attention
at its two coarser levels (attention at 16x16 with 8-wide heads costs more than the rest of the UNet on a
CPU), and a four-layer 64-wide CLIP text encoder over the real 49408-token CLIP vocabulary, so any prompt
a user types is tokenized as SD1 tokenizes it. About 11 M parameters: ~22 MB as fp16 safetensors.
"""

from __future__ import annotations

import torch
from transformers import CLIPTextModel

from modules.sumi.engine.tiny_models import Components, clip_config, unet, vae

IMAGE_SIDE = 128
LATENT_SIDE = IMAGE_SIDE // 8
# GroupNorm groups come from the widths (every loader's rule: 32 when the widths allow it, else the largest
# count that divides them all). Norms over one or two channels per group wipe out each channel's mean,
# which is what a flat colour is made of, and the VAE then learnt colours several times slower. So the
# VAE's widths share no divisor (one group: each norm keeps the channels' relative levels) and the UNet's
# share 8 (8 groups of 8 to 17 channels, about SD's 10).
VAE_CHANNELS = (25, 32, 64, 64)
UNET_CHANNELS = (64, 128, 136)
SCALING_FACTOR = 0.18215  # SD1's: every SD1 loader multiplies latents by it, so the VAE is trained to suit it


def demo_components(seed: int) -> Components:
    """Freshly initialised demo-model parts (diffusers' and transformers' own initialisation), from `seed`."""
    torch.manual_seed(seed)
    model = unet(
        block_out_channels=list(UNET_CHANNELS),
        norm_num_groups=8,
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        cross_attention_dim=64,
        attention_head_dim=8,
        sample_size=LATENT_SIDE,
    )
    autoencoder = vae(VAE_CHANNELS, norm_groups=1, sample_size=IMAGE_SIDE, scaling_factor=SCALING_FACTOR)
    text = CLIPTextModel(clip_config(64, openclip=False, layers=4, intermediate=256))
    return {"family": "SD1", "unet": model, "vae": autoencoder, "text_encoders": [text]}
