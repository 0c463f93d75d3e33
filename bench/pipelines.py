"""The diffusers pipeline a benchmark compares Sumi with, built from Sumi's loaded model (same weights)."""

from __future__ import annotations

from typing import Any

from modules.sumi.engine.model import SDModel


def diffusers_pipeline(pipeline_class: type, model: SDModel, scheduler: Any, **components: Any) -> Any:
    """`pipeline_class` (StableDiffusionPipeline, ...Img2ImgPipeline, ...ControlNetPipeline) over `model`'s
    UNet, VAE and first text encoder, with `scheduler`, no safety checker and no progress bar."""
    spec = model.text_encoders[0]
    pipe = pipeline_class(
        vae=model.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **components,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
