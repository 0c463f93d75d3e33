"""A tiny random-weight SD1-family checkpoint, so a fresh install runs end to end with no download.

Its images are noise; it exists to show every part of the app working until the user adds a real
checkpoint. It is written in the real A1111 single-file layout and loaded through the normal path.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from modules.sumi.engine.ldm_export import save_checkpoint, to_single_file_state_dict
from modules.sumi.util.atomic import temp_beside

DEMO_NAME = "sumi-demo-tiny-random.safetensors"


def _tiny_components(seed: int) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    torch.manual_seed(seed)
    # Attention only at the coarser level: 512x512 images stay quick on a CPU.
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(  # four levels: 8 pixels per latent pixel, like the real VAE
        block_out_channels=(32, 32, 32, 32),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=32,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=1,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    return unet, vae, text


def create_demo_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write the demo checkpoint into `folder` (once) and return its path."""
    path = Path(folder) / DEMO_NAME
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    unet, vae, text = _tiny_components(seed)
    state = to_single_file_state_dict("SD1", unet, vae, [text])
    with temp_beside(path, suffix=".tmp.safetensors") as tmp:
        save_checkpoint(
            tmp, state, metadata={"sumi_demo": "true", "description": "tiny random weights: images are noise"}
        )
        tmp.replace(path)
    return path
