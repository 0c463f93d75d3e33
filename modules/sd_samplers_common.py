"""A1111's `modules.sd_samplers_common`: the names extensions import from it.

`SamplerData` describes one sampler (`sd_samplers.all_samplers` holds them); `constructor(model)` builds
A1111's sampler object (see `sd_samplers.create_sampler`). `InterruptedException` is what A1111 raises
when a job is interrupted; extensions catch it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from modules import shared

# A1111's `sd_vae_decode_method` choices by index; Sumi's facade decodes with the full VAE for every one
approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}


class SamplerData(NamedTuple):
    name: str
    constructor: Callable[..., Any] | None
    aliases: list[str]
    options: dict[str, Any]

    def total_steps(self, steps: int) -> int:
        """Model evaluations per image: second-order samplers call the model twice per step."""
        return steps * 2 if self.options.get("second_order", False) else steps


class InterruptedException(BaseException):
    pass


def samples_to_images_tensor(
    sample: torch.Tensor, approximation: int | None = None, model: Any = None
) -> torch.Tensor:
    """Latents (B, C, h, w) to pixels (B, 3, H, W) in about [-1, 1] with `model`'s VAE (the loaded model's
    when None). `approximation` is accepted; the full VAE decodes."""
    model = model if model is not None else shared.sd_model
    return model.decode_first_stage(sample)


def images_tensor_to_samples(
    image: torch.Tensor, approximation: int | None = None, model: Any = None
) -> torch.Tensor:
    """Pixels (B, 3, H, W) in [0, 1] to latents scaled for the sampler with `model`'s VAE (the loaded
    model's when None), one picture at a time as A1111 encodes a batch (the posterior's mean, see
    `sd_model.get_first_stage_encoding`)."""
    model = model if model is not None else shared.sd_model
    image = image * 2 - 1
    pictures = [image] if len(image) == 1 else [picture.unsqueeze(0) for picture in image]
    latents = [model.get_first_stage_encoding(model.encode_first_stage(picture)) for picture in pictures]
    return torch.cat(latents)
