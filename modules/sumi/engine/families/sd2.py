"""Stable Diffusion 2.x: OpenCLIP ViT-H/14 text encoder; epsilon (512 base) or v-prediction (768-v).

v-prediction is not in the weights. Without a yaml (or metadata) saying so, A1111's test decides:
run the UNet once at t=999 on a constant 0.5 latent with a constant 0.5 context; a v-prediction
model answers far below its input (mean(out - x) < -1). 9-channel inpainting models are epsilon.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from modules.sumi.engine import ldm_export
from modules.sumi.engine.families.base import OPENCLIP_PAD, ModelFamily, TextEncoderLayout
from modules.sumi.engine.files import cast_module


def looks_like_v_prediction(unet: UNet2DConditionModel) -> bool:
    """A1111's v-prediction test (sd_models_config.is_using_v_parameterization_for_sd2)."""
    config = unet.config
    size = max(8, 2 ** (len(config["block_out_channels"]) - 1))
    dtype = unet.dtype
    try:
        cast_module(unet, torch.float32)
        x = torch.full((1, config["in_channels"], size, size), 0.5, device=unet.device)
        context = torch.full((1, 2, config["cross_attention_dim"]), 0.5, device=unet.device)
        with torch.no_grad():
            out = unet(x, torch.tensor([999], device=unet.device), encoder_hidden_states=context).sample
        return (out - x).mean().item() < -1
    finally:
        cast_module(unet, dtype)


class SD2(ModelFamily):
    name = "SD2"
    expectation = (
        "model.diffusion_model.* with cond_stage_model.model.transformer.resblocks.* (SD2, OpenCLIP ViT-H)"
    )
    signature_keys = (
        "model.diffusion_model.input_blocks.0.0.weight",
        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
    )
    # The UNet sees the penultimate OpenCLIP layer + final norm; the converted model stops there.
    text_encoders = (
        TextEncoderLayout(
            ldm_export.SD2_OPENCLIP_PREFIX, openclip=True, pad_token=OPENCLIP_PAD, drop_last_block=True
        ),
    )

    def native_sample_size(self, prediction_type: str) -> int:
        """512 px for the epsilon models (2.x-base, inpainting), 768 px for the v-prediction ones."""
        return 96 if prediction_type == "v_prediction" else 64

    def default_prediction_type(self, unet: UNet2DConditionModel) -> tuple[str, str]:
        if unet.config["in_channels"] == 9:
            return "epsilon", "family default (SD2 inpainting)"
        if looks_like_v_prediction(unet):
            return "v_prediction", "v-prediction test"
        return "epsilon", "v-prediction test"
