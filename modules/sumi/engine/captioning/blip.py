"""Captioning a picture with a BLIP-style image-to-text model from transformers (A1111's "CLIP"
interrogation writes a BLIP caption first): the processor prepares the picture, the model generates
with A1111's beam count and length bounds, and the caption is decoded without special tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image


@dataclass(frozen=True)
class CaptionOptions:
    num_beams: int = 1  # interrogate_clip_num_beams
    min_length: int = 24  # interrogate_clip_min_length (tokens)
    max_length: int = 48  # interrogate_clip_max_length (tokens)


@torch.no_grad()
def generate_caption(model: Any, processor: Any, image: Image.Image, options: CaptionOptions) -> str:
    """One caption for an RGB picture; `model` sits on its device in its dtype."""
    param = next(model.parameters())
    inputs = processor(images=image.convert("RGB"), return_tensors="pt")
    pixels = inputs["pixel_values"].to(param.device, param.dtype)
    max_length = max(int(options.max_length), 1)
    output = model.generate(
        pixel_values=pixels,
        num_beams=max(int(options.num_beams), 1),
        min_length=min(max(int(options.min_length), 0), max_length),
        max_length=max_length,
        do_sample=False,
    )
    return processor.decode(output[0], skip_special_tokens=True).strip()
