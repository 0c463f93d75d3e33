"""DDIM CFG++ (Chung et al. 2024, arXiv:2406.08070), A1111 1.10's "DDIM CFG++".

A DDIM step re-noises its x0 estimate along the *unconditional* noise prediction instead of the guided
one, and the CFG scale is divided by 12.5 (CFG 12.5 here is full guidance, 1 in the paper's scale).
Like A1111's DDIM it runs on the training timesteps 1, 1 + k, ... (k = 1000 // steps), from the highest,
in variance-preserving latents x = sqrt(a) * x0 + sqrt(1 - a) * eps, and stops at the level of
timestep 1: `steps - 1` model calls.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from modules.sumi.engine.sampling.k_samplers import Steps
from modules.sumi.engine.sampling.noise_sources import NoiseSource

CFG_DIVISOR = 12.5


class EpsModel(Protocol):
    def __call__(self, x: torch.Tensor, timestep: int, /) -> tuple[torch.Tensor, torch.Tensor]:
        """(guided noise prediction, unconditional noise prediction) at a training timestep."""
        ...


def ddim_cfgpp(
    model: EpsModel,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    steps: Steps,
    noise: NoiseSource,
    eta: float = 0.0,
) -> torch.Tensor:
    """`timesteps` ascending; the step at index i goes to the level of index i - 1 (index 0 is not run)."""
    alphas = alphas_cumprod[timesteps].to(torch.float64)
    padded = torch.cat([timesteps.new_zeros(1), timesteps[:-1]])
    alphas_prev = alphas_cumprod[padded].to(torch.float64)
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    x = steps.start(x, len(timesteps) - 1)
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        e_t, e_uncond = model(x, int(timesteps[index]))
        a_t, a_prev, sigma_t = float(alphas[index]), float(alphas_prev[index]), float(sigmas[index])
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - sigma_t**2) * e_uncond
        if sigma_t > 0:
            x = x + sigma_t * noise(torch.tensor(0.0), torch.tensor(0.0))
        x = steps.done(x, pred_x0, last=i == len(timesteps) - 2)
    return x
