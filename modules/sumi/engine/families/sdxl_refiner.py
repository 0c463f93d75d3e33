"""The SDXL refiner: its own UNet sizes, only OpenCLIP bigG (`conditioner.embedders.0.model.*`), and
size + aesthetic-score conditioning: time ids (original h, w, crop top, left, aesthetic score), the
high score with the prompt and the low one with the negative prompt (A1111's settings
`sdxl_refiner_high_aesthetic_score` 6.0 / `sdxl_refiner_low_aesthetic_score` 2.5; diffusers'
`requires_aesthetics_score`)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from modules.sumi.engine import ldm_export
from modules.sumi.engine.families.base import (
    OPENCLIP_PAD,
    ModelFamily,
    StateDict,
    TextEncoderLayout,
)
from modules.sumi.engine.families.sdxl import text_time_config

NAME = "SDXL-refiner"
AESTHETIC_CONDITIONS = 5  # original size (h, w), crop top-left (top, left), aesthetic score


class SDXLRefiner(ModelFamily):
    name = NAME
    expectation = (
        "model.diffusion_model.* with only conditioner.embedders.0.model.* (SDXL refiner, OpenCLIP bigG)"
    )
    signature_keys = (
        "model.diffusion_model.input_blocks.0.0.weight",
        "conditioner.embedders.0.model.ln_final.weight",
    )
    text_encoders = (
        TextEncoderLayout(
            ldm_export.SDXL_REFINER_CLIP_G_PREFIX,
            openclip=True,
            pad_token=OPENCLIP_PAD,
            layer=-2,
            final_norm=False,
            pooled=True,
        ),
    )
    vae_scaling_factor = 0.13025
    sample_size = 128

    def unet_extra_config(self, state_dict: Mapping[str, Tensor], u: StateDict, source: str) -> dict:
        """adm_in_channels = pooled text width + 5 x the size-embedding width (2560 = 1280 + 5 x 256)."""
        return text_time_config(
            state_dict,
            u,
            source,
            ldm_export.SDXL_REFINER_CLIP_G_PREFIX,
            AESTHETIC_CONDITIONS,
            ("SDXL refiner", "size/aesthetic"),
        )
