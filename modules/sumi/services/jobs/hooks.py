"""Where a job meets scripts and callbacks: per-batch fields on `p`, the scripts' postprocessing of a
batch, and the batch's A1111 sampler object with its denoiser and cfg callbacks (services.jobs.cfg_bridge)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from modules.sumi.engine.extensions import Extension
from modules.sumi.engine.sampling.training_noise import training_sigmas
from modules.sumi.services.controlnet.service import PreparedControl
from modules.sumi.services.jobs.a1111_sampler import sampler_for_batch
from modules.sumi.services.jobs.cfg_bridge import A1111Denoiser, needs_a1111_denoiser
from modules.sumi.services.models.manager import LoadedModel
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.runner import PostprocessBatchListArgs, PostprocessImageArgs


@dataclass
class JobContext:
    """What a job prepares once for all its batches."""

    embeddings: Any = None  # the textual-inversion hook
    control: PreparedControl = field(default_factory=PreparedControl)
    conditioning_cache: dict = field(default_factory=dict)  # batches with the same prompts encode once
    tiles: Any = None  # services.jobs.tiling.JobTiling: models loaded mid-job (hires, refiner) tile too


def select_batch(p: Any, n: int) -> None:
    """A1111's per-batch fields: `p.prompts`, `p.negative_prompts`, `p.seeds`, `p.subseeds`."""
    window = slice(n * p.batch_size, (n + 1) * p.batch_size)
    p.prompts = p.all_prompts[window]
    p.negative_prompts = p.all_negative_prompts[window]
    p.seeds = p.all_seeds[window]
    p.subseeds = p.all_subseeds[window]


def postprocess_batch(
    p: Any,
    images: list[Any],
    n: int,
    composite: Callable[[int, Any], Any] | None = None,
    restore: Callable[[int, Any], Any] | None = None,
) -> list[Any]:
    """The scripts' postprocess_batch (a [B, 3, H, W] tensor in 0..1, as A1111), postprocess_batch_list
    (may replace the list), `restore(i, image)` (face restoration), postprocess_image (may replace each
    image); then `composite(i, image)` (img2img's overlay of the original) and
    postprocess_image_after_composite."""
    if p.scripts is None and composite is None and restore is None:
        return images
    if p.scripts is not None:
        p.scripts.postprocess_batch(p, _as_tensor(images), batch_number=n)
        batch = PostprocessBatchListArgs(list(images))
        p.scripts.postprocess_batch_list(p, batch, batch_number=n)
        images = batch.images
    result = []
    for i, image in enumerate(images):
        p.batch_index = i
        args = PostprocessImageArgs(restore(i, image) if restore is not None else image)
        if p.scripts is not None:
            p.scripts.postprocess_image(p, args)
        if composite is not None:
            args.image = composite(i, args.image)
        if p.scripts is not None:
            p.scripts.postprocess_image_after_composite(p, args)
        result.append(args.image)
    return result


def _as_tensor(images: list[Any]) -> torch.Tensor:
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def a1111_cfg(callbacks: CallbackRegistry | None, p: Any, loaded: LoadedModel) -> Extension | None:
    """The batch's A1111 sampler object (`p.sampler`, made through `sd_samplers.create_sampler` as it is
    now, so extensions' wraps apply) and the engine extension that runs its `CFGDenoiser` and the cfg
    callbacks; None (no cost) when neither a callback nor a `combine_denoised` override needs it."""
    sampler = sampler_for_batch(p.sampler_name, p.sd_model)
    p.sampler = sampler
    if hasattr(sampler, "p"):
        sampler.p = p  # A1111's sampler knows its job (per-step callbacks read `self.p`)
    denoiser = getattr(sampler, "model_wrap_cfg", None)
    if denoiser is not None:
        denoiser.p = p
        denoiser.steps = p.steps
    if not needs_a1111_denoiser(callbacks, sampler):
        return None
    sigmas = training_sigmas(loaded.sd.scheduler_config)
    return A1111Denoiser(callbacks, sampler, sigmas, loaded.sd.prediction_type)
