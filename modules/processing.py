"""A1111's `modules.processing`: the processing objects extensions build, and `process_images`.

The classes live in `modules.sumi.services.jobs.processing`; the functions here find the running App
through `modules.shared`, as every A1111 module-level function does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from modules import devices, rng, shared
from modules.rng import slerp
from modules.sd_samplers_common import images_tensor_to_samples, samples_to_images_tensor
from modules.sumi.services.images.colors import apply_color_correction, setup_color_correction
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessing,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    apply_overlay,
    create_binary_mask,
    first_text,
    fix_seed,
    get_fixed_seed,
    old_hires_fix_first_pass_dimensions,
    opt_C,
    opt_f,
    uncrop,
)

__all__ = [
    "Processed",
    "StableDiffusionProcessing",
    "StableDiffusionProcessingImg2Img",
    "StableDiffusionProcessingTxt2Img",
    "DecodedSamples",
    "apply_overlay",
    "create_binary_mask",
    "create_infotext",
    "create_random_tensors",
    "decode_first_stage",
    "decode_latent_batch",
    "images_tensor_to_samples",
    "slerp",
    "fix_seed",
    "get_fixed_seed",
    "old_hires_fix_first_pass_dimensions",
    "opt_C",
    "opt_f",
    "process_images",
    "process_images_inner",
    "apply_color_correction",
    "setup_color_correction",
    "uncrop",
]


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run a txt2img or img2img job (by the type of `p`) on the running app (A1111 entry point for
    scripts and extensions): on the GPU worker, inline when called from a job (a script's `run`, an
    extension's `postprocess_image` running an inner img2img job), else queued (an extension's own tab)."""
    return shared.app().runner.process(p)


# A1111 calls the job body `process_images_inner`; in Sumi patching it changes nothing.
process_images_inner = process_images


def create_random_tensors(
    shape: Sequence[int],
    seeds: Sequence[int],
    subseeds: Sequence[int] | None = None,
    subseed_strength: float = 0.0,
    seed_resize_from_h: int = 0,
    seed_resize_from_w: int = 0,
    p: Any = None,
) -> torch.Tensor:
    """The first noise of `seeds` (one (C, H, W) draw each), as a job makes it (A1111: `ImageRNG.next()`)."""
    return rng.ImageRNG(
        shape, seeds, subseeds, subseed_strength, seed_resize_from_h, seed_resize_from_w
    ).next()


def decode_first_stage(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Latents to pixels in about [-1, 1] with the model's VAE (A1111's full decode)."""
    return samples_to_images_tensor(x, None, model)


class DecodedSamples(list):
    """A list of decoded images (A1111 marks it so a sampler's result is not decoded twice)."""

    already_decoded = True


def decode_latent_batch(
    model: Any, batch: torch.Tensor, target_device: Any = None, check_for_nans: bool = False
) -> DecodedSamples:
    """Each latent of `batch` decoded alone (pixels in about [-1, 1]), moved to `target_device`; with
    `check_for_nans` a picture that is all NaN raises A1111's NansException."""
    samples = DecodedSamples()
    for i in range(batch.shape[0]):
        sample = decode_first_stage(model, batch[i : i + 1])[0]
        if check_for_nans:
            devices.test_for_nans(sample, "vae")
        samples.append(sample.to(target_device) if target_device is not None else sample)
    return samples


def create_infotext(
    p: StableDiffusionProcessing,
    all_prompts: list[str] | None = None,
    all_seeds: list[int] | None = None,
    all_subseeds: list[int] | None = None,
    comments: Any = None,
    iteration: int = 0,
    position_in_batch: int = 0,
    use_main_prompt: bool = False,
    index: int | None = None,
    all_negative_prompts: list[str] | None = None,
) -> str:
    """The infotext image `index` of job `p` gets (A1111's signature), as Sumi writes it."""
    if index is None:
        index = 0 if use_main_prompt else position_in_batch + iteration * p.batch_size
    q = copy.copy(p)
    scalars = {
        "all_prompts": (all_prompts, first_text(p.prompt)),
        "all_negative_prompts": (all_negative_prompts, first_text(p.negative_prompt)),
        "all_seeds": (all_seeds, p.seed),
        "all_subseeds": (all_subseeds, p.subseed),
    }
    for name, (given, scalar) in scalars.items():  # a job that has not run yet has empty lists
        setattr(q, name, list(given if given is not None else getattr(p, name)) or [scalar] * (index + 1))
    app = shared.app()
    return app.generation.infotext(q, app.models.active, index, p.scheduler or "Automatic")
