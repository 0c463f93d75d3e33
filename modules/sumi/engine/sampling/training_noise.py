"""The model's 1000 training noise levels, from its scheduler config (what `q_sample` noises with and what
the extension formulas that work in DDPM terms read)."""

from __future__ import annotations

import torch

_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")


def training_alphas(scheduler_config: dict | None) -> torch.Tensor:
    """alphas_cumprod [1000] of the model's training schedule (float32, as diffusers' DDPMScheduler)."""
    from diffusers import DDPMScheduler

    config = {k: v for k, v in (scheduler_config or {}).items() if k in _KEYS}
    return DDPMScheduler(**config).alphas_cumprod


def training_sigmas(scheduler_config: dict | None) -> torch.Tensor:
    """The 1000 training noise levels as k-diffusion sigmas, sqrt((1 - alphas_cumprod) / alphas_cumprod)."""
    alphas = training_alphas(scheduler_config).double()
    return ((1 - alphas) / alphas).sqrt()
