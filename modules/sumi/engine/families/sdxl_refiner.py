"""The SDXL refiner: its own UNet sizes, only OpenCLIP bigG (`conditioner.embedders.0.model.*`), and
size + aesthetic-score conditioning: time ids (original h, w, crop top, left, aesthetic score), the
high score with the prompt and the low one with the negative prompt (A1111's settings
`sdxl_refiner_high_aesthetic_score` 6.0 / `sdxl_refiner_low_aesthetic_score` 2.5; diffusers'
`requires_aesthetics_score`)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from modules.sumi.engine import ldm_export
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families.base import (
    OPENCLIP_PAD,
    UNET_PREFIX,
    ModelFamily,
    StateDict,
    TextEncoderLayout,
)

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
        label = u.get("label_emb.0.0.weight")
        projection = state_dict.get(ldm_export.SDXL_REFINER_CLIP_G_PREFIX + "text_projection")
        if label is None or projection is None:
            missing = f"{UNET_PREFIX}label_emb.0.0.weight" if label is None else "text_projection"
            raise ModelLoadError(f"{source}: an SDXL refiner checkpoint needs {missing}")
        adm_in, pooled = int(label.shape[1]), int(projection.shape[1])
        time_dim, leftover = divmod(adm_in - pooled, AESTHETIC_CONDITIONS)
        if leftover or time_dim < 1:
            raise ModelLoadError(
                f"{source}: label_emb takes {adm_in} inputs, which is not the pooled width {pooled} "
                f"+ {AESTHETIC_CONDITIONS} size/aesthetic embeddings"
            )
        return {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": time_dim,
            "projection_class_embeddings_input_dim": adm_in,
        }
