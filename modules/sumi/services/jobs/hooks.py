"""Where a job meets scripts and callbacks: per-batch fields on `p`, the scripts' postprocessing of a
batch, and A1111's `on_cfg_denoiser` / `on_cfg_denoised` / `on_cfg_after_cfg` around each model call
(an engine extension, `CfgCallbacks`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from modules.sumi.engine.extensions import DenoiserCall, DenoiserOutput, Extension, HookPoint, hook
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


class CfgCallbacks(Extension):
    """A1111's cfg callbacks around every model call: `on_cfg_denoiser` before the UNet (may replace `x`;
    sees the call's noise level and its conds), then `on_cfg_denoised` and `on_cfg_after_cfg` on the
    guided prediction (the last may replace it)."""

    def __init__(self, callbacks: CallbackRegistry, sigmas: torch.Tensor, inner_model: Any) -> None:
        super().__init__()
        self.callbacks = callbacks
        self.sigmas = sigmas
        self.inner_model = inner_model

    @hook(HookPoint.PRE_MODEL_CALL)
    def cfg_denoiser(self, call: DenoiserCall) -> None:
        sigma = sigma_at(self.sigmas, call.timestep).to(call.x.device).expand(call.x.shape[0])
        params = CFGDenoiserParams(
            call.x, None, sigma, call.step, call.total_steps, call.conds, call.unconds, call.denoiser
        )
        self.callbacks.call("cfg_denoiser", params)
        call.x = params.x

    @hook(HookPoint.POST_CFG)
    def cfg_denoised(self, out: DenoiserOutput) -> None:
        call = out.call
        denoised = CFGDenoisedParams(out.output, call.step, call.total_steps, self.inner_model)
        self.callbacks.call("cfg_denoised", denoised)
        after_cfg = AfterCFGCallbackParams(denoised.x, call.step, call.total_steps)
        self.callbacks.call("cfg_after_cfg", after_cfg)
        out.output = after_cfg.x


def cfg_callbacks(callbacks: CallbackRegistry | None, loaded: LoadedModel) -> CfgCallbacks | None:
    """The cfg-callback extension for a batch; None (no cost) when no extension registered any."""
    if callbacks is None or not any(
        callbacks.has(c) for c in ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg")
    ):
        return None
    return CfgCallbacks(callbacks, training_sigmas(loaded.sd.scheduler_config), loaded.sd.unet)
