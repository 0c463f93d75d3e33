"""The UniPC cases checked against the UniPC authors' solver (tools/sampler_reference/unipc.py writes
tests/fixtures/reference/unipc.json from them): a fixed smooth noise model and A1111's timesteps."""

from __future__ import annotations

import torch

CASES = [
    {"variant": "bh1", "skip_type": "time_uniform", "order": 3, "lower_order_final": True, "steps": 20},
    {"variant": "bh2", "skip_type": "time_uniform", "order": 3, "lower_order_final": True, "steps": 20},
    {
        "variant": "vary_coeff",
        "skip_type": "time_uniform",
        "order": 3,
        "lower_order_final": True,
        "steps": 20,
    },
    {"variant": "bh1", "skip_type": "time_quadratic", "order": 2, "lower_order_final": True, "steps": 10},
    {"variant": "bh1", "skip_type": "logSNR", "order": 3, "lower_order_final": False, "steps": 10},
    {"variant": "bh2", "skip_type": "logSNR", "order": 4, "lower_order_final": True, "steps": 7},
    {"variant": "bh1", "skip_type": "time_uniform", "order": 1, "lower_order_final": True, "steps": 5},
    {
        "variant": "vary_coeff",
        "skip_type": "time_quadratic",
        "order": 2,
        "lower_order_final": True,
        "steps": 8,
    },
    # steps 30: A1111's timesteps 1, 34, ..., 991 are 31, so UniPC runs 31 steps
    {"variant": "bh1", "skip_type": "time_uniform", "order": 3, "lower_order_final": True, "steps": 30},
    # img2img at denoising strength 0.5: the first 10 of 20 timesteps, from t = (451 + 1) / 1000
    {
        "variant": "bh1",
        "skip_type": "time_uniform",
        "order": 3,
        "lower_order_final": True,
        "steps": 20,
        "run_steps": 10,
    },
    {
        "variant": "bh2",
        "skip_type": "logSNR",
        "order": 2,
        "lower_order_final": True,
        "steps": 12,
        "run_steps": 5,
    },
]


def a1111_timesteps(steps: int, run_steps: int | None = None) -> torch.Tensor:
    """A1111's timestep samplers' timesteps (ascending), the first `run_steps` of them for img2img."""
    timesteps = torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)
    return timesteps[:run_steps] if run_steps else timesteps


def start_latents() -> torch.Tensor:
    return torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(3))


def toy_eps(x: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
    """A smooth stand-in for a UNet's noise prediction: depends on the latents and the timestep."""
    t = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return 0.8 * x * torch.cos(t / 700) + 0.3 * torch.sin(t / 90 + x)
