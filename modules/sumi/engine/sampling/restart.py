"""Restart sampling (Xu et al. 2023, arXiv:2306.14878) as A1111's `sd_samplers_extra.restart_sampler`.

Heun steps down the schedule; at sigma ~0.1 the sampler jumps back up to sigma ~2 by adding fresh noise
and walks down again on a short Karras schedule, once (20-35 steps) or twice (36+ steps). For 20+
steps the main schedule is rebuilt as Karras with fewer steps so the model calls stay about 2 x steps.
"""

from __future__ import annotations

import torch

from modules.sumi.engine.sampling.k_samplers import Model, Steps, to_d
from modules.sumi.engine.sampling.noise_sources import NoiseSource
from modules.sumi.engine.sampling.schedules import karras_sigmas as _karras


def restart_plan(sigmas: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (sigma, sigma_next) pairs the sampler walks, restart segments included."""
    steps = sigmas.shape[0] - 1
    restarts: dict[float, tuple[int, int, float]] = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = _karras(steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item())
        restarts = {0.1: (restart_steps + 1, restart_times, 2.0)}
    at_index = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restarts.items()}
    plan = []
    for i in range(len(sigmas) - 1):
        plan.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in at_index:
            restart_steps, times, restart_max = at_index[i + 1]
            low = i + 1
            high = int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if high < low:
                segment = _karras(restart_steps, sigmas[low].item(), sigmas[high].item())[:-1]
                for _ in range(times):
                    plan.extend(zip(segment[:-1], segment[1:], strict=True))
    return plan


def restart(
    model: Model,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    steps: Steps,
    noise: NoiseSource,
    s_noise: float = 1.0,
) -> torch.Tensor:
    plan = restart_plan(sigmas)
    x = steps.start(x, len(plan))
    last = None
    for k, (sigma, sigma_next) in enumerate(plan):
        if last is not None and last < sigma:
            x = x + noise(sigma, sigma_next) * s_noise * (sigma**2 - last**2) ** 0.5
        denoised = model(x, sigma)
        d = to_d(x, sigma, denoised)
        dt = sigma_next - sigma
        if sigma_next == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigma_next, model(x_2, sigma_next))
            x = x + (d + d_2) / 2 * dt
        last = sigma_next
        x = steps.done(x, denoised, last=k == len(plan) - 1)
    return x
