"""Stable Diffusion 1.x (and its 9-channel inpainting variant): OpenAI CLIP ViT-L/14."""

from __future__ import annotations

from modules.sumi.engine import ldm_export
from modules.sumi.engine.families.base import OPENAI_PAD, ModelFamily, TextEncoderLayout, heads_dividing


class SD1(ModelFamily):
    name = "SD1"
    expectation = (
        "model.diffusion_model.* with cond_stage_model.transformer.text_model.* (SD1, OpenAI CLIP ViT-L)"
    )
    signature_keys = (
        "model.diffusion_model.input_blocks.0.0.weight",
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    )
    text_encoders = (TextEncoderLayout(ldm_export.SD1_CLIP_PREFIX, openclip=False, pad_token=OPENAI_PAD),)

    def default_heads(self, channels: list[int]) -> int | list[int]:
        """8 heads at every level (`num_heads: 8` in v1-inference.yaml)."""
        heads = [heads_dividing(c, 8) for c in channels]
        return heads[0] if len(set(heads)) == 1 else heads
