"""Where a job meets scripts and callbacks: per-batch fields on `p`, the scripts' postprocessing of a
batch, and A1111's `on_cfg_denoiser` / `on_cfg_denoised` / `on_cfg_after_cfg` around each model call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from modules.sumi.engine.sampling.denoiser import CFGDenoiser, DenoiserCall
from modules.sumi.services.controlnet.service import PreparedControl
from modules.sumi.services.models.manager import LoadedModel
from modules.sumi.services.scripts.callbacks import (
    AfterCFGCallbackParams,
    CallbackRegistry,
    CFGDenoisedParams,
    CFGDenoiserParams,
)
from modules.sumi.services.scripts.runner import PostprocessBatchListArgs, PostprocessImageArgs


@dataclass
class JobContext:
    """What a job prepares once for all its batches."""

    embeddings: Any = None  # the textual-inversion hook
    control: PreparedControl = field(default_factory=PreparedControl)
    conditioning_cache: dict = field(default_factory=dict)  # batches with the same prompts encode once


def select_batch(p: Any, n: int) -> None:
    """A1111's per-batch fields: `p.prompts`, `p.negative_prompts`, `p.seeds`, `p.subseeds`."""
    window = slice(n * p.batch_size, (n + 1) * p.batch_size)
    p.prompts = p.all_prompts[window]
    p.negative_prompts = p.all_negative_prompts[window]
    p.seeds = p.all_seeds[window]
    p.subseeds = p.all_subseeds[window]


def postprocess_batch(p: Any, images: list[Any], n: int) -> list[Any]:
    """The scripts' postprocess_batch (a [B, 3, H, W] tensor in 0..1, as A1111), postprocess_batch_list
    (may replace the list) and postprocess_image (may replace each image)."""
    if p.scripts is None:
        return images
    p.scripts.postprocess_batch(p, _as_tensor(images), batch_number=n)
    batch = PostprocessBatchListArgs(list(images))
    p.scripts.postprocess_batch_list(p, batch, batch_number=n)
    result = []
    for image in batch.images:
        args = PostprocessImageArgs(image)
        p.scripts.postprocess_image(p, args)
        result.append(args.image)
    return result


def _as_tensor(images: list[Any]) -> torch.Tensor:
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def training_sigmas(scheduler_config: dict) -> torch.Tensor:
    """The model's 1000 training noise levels, sigma = sqrt((1 - alphas_cumprod) / alphas_cumprod)."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
    config = {k: v for k, v in (scheduler_config or {}).items() if k in keys}
    alphas = DDPMScheduler(**config).alphas_cumprod.double()
    return ((1 - alphas) / alphas).sqrt()


def sigma_at(sigmas: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
    """The noise level of a (possibly fractional) timestep, interpolated in log sigma like k-diffusion."""
    t = float(torch.as_tensor(timestep).flatten()[0])
    t = min(max(t, 0.0), len(sigmas) - 1.0)
    low = int(t)
    high = min(low + 1, len(sigmas) - 1)
    w = t - low
    log_sigma = (1 - w) * sigmas[low].log() + w * sigmas[high].log()
    return log_sigma.exp().float().reshape(1)


def denoiser_callbacks(
    callbacks: CallbackRegistry | None, loaded: LoadedModel
) -> Callable[[CFGDenoiser], None] | None:
    """Hooks that call the cfg callbacks; None (no cost) when no extension registered any."""
    if callbacks is None or not any(
        callbacks.has(c) for c in ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg")
    ):
        return None

    sigmas = training_sigmas(loaded.sd.scheduler_config)

    def attach(denoiser: CFGDenoiser) -> None:
        def before(call: DenoiserCall) -> None:
            sigma = sigma_at(sigmas, call.timestep).to(call.x.device).expand(call.x.shape[0])
            params = CFGDenoiserParams(
                call.x, None, sigma, call.step, call.total_steps, call.conds, call.unconds, denoiser
            )
            callbacks.call("cfg_denoiser", params)
            call.x = params.x

        def after(call: DenoiserCall, out: torch.Tensor) -> torch.Tensor:
            denoised = CFGDenoisedParams(out, call.step, call.total_steps, loaded.sd.unet)
            callbacks.call("cfg_denoised", denoised)
            after_cfg = AfterCFGCallbackParams(denoised.x, call.step, call.total_steps)
            callbacks.call("cfg_after_cfg", after_cfg)
            return after_cfg.x

        denoiser.before.append(before)
        denoiser.after.append(after)

    return attach
