"""SDXL base (and 9-channel inpainting): CLIP ViT-L + OpenCLIP bigG, size/crop conditioning."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from modules.sumi.engine import ldm_export
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.families.base import (
    OPENAI_PAD,
    OPENCLIP_PAD,
    UNET_PREFIX,
    ModelFamily,
    StateDict,
    TextEncoderLayout,
)

SIZE_CONDITIONS = 6  # original size, crop top-left, target size: (h, w) each


class SDXL(ModelFamily):
    name = "SDXL"
    expectation = (
        "model.diffusion_model.* with conditioner.embedders.0.transformer.text_model.* and "
        "conditioner.embedders.1.model.* (SDXL, CLIP ViT-L + OpenCLIP bigG)"
    )
    signature_keys = (
        "model.diffusion_model.input_blocks.0.0.weight",
        "conditioner.embedders.1.model.ln_final.weight",
    )
    text_encoders = (
        TextEncoderLayout(
            ldm_export.SDXL_CLIP_L_PREFIX, openclip=False, pad_token=OPENAI_PAD, layer=-2, final_norm=False
        ),
        TextEncoderLayout(
            ldm_export.SDXL_CLIP_G_PREFIX,
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
        """adm_in_channels = pooled text width + 6 x the size-embedding width (2816 = 1280 + 6 x 256)."""
        return text_time_config(
            state_dict, u, source, ldm_export.SDXL_CLIP_G_PREFIX, SIZE_CONDITIONS, ("SDXL", "size")
        )


def text_time_config(
    state_dict: Mapping[str, Tensor],
    u: StateDict,
    source: str,
    clip_g_prefix: str,
    conditions: int,
    names: tuple[str, str],
) -> dict:
    """The UNet's "text_time" addition embedding read from its weights: label_emb takes the pooled
    bigG text width plus `conditions` time embeddings. `names`: (family, what the embeddings are)."""
    family, what = names
    label = u.get("label_emb.0.0.weight")
    projection = state_dict.get(clip_g_prefix + "text_projection")
    if label is None or projection is None:
        missing = f"{UNET_PREFIX}label_emb.0.0.weight" if label is None else "text_projection"
        raise ModelLoadError(f"{source}: an {family} checkpoint needs {missing}")
    adm_in, pooled = int(label.shape[1]), int(projection.shape[1])
    time_dim, leftover = divmod(adm_in - pooled, conditions)
    if leftover or time_dim < 1:
        raise ModelLoadError(
            f"{source}: label_emb takes {adm_in} inputs, which is not the pooled width {pooled} "
            f"+ {conditions} {what} embeddings"
        )
    return {
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": time_dim,
        "projection_class_embeddings_input_dim": adm_in,
    }
