"""A1111 sampler names, schedule types and the samplers diffusers lacks (DPM++ 2S a, Euler a with eta)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.sampling import loop
from modules.sumi.engine.sampling.samplers import SAMPLERS, build_scheduler, find_sampler

MODEL = scheduler_config("epsilon")  # the config every released SD family uses


def _log_sigmas() -> np.ndarray:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    return np.log((((1 - alphas) / alphas) ** 0.5).numpy())


def _sigma_of(t: torch.Tensor) -> float:
    return float(np.exp(np.interp(float(t), np.arange(1000), _log_sigmas())))


def _exact_denoised(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The ideal denoiser for data ~ N(0, 1): E[x0 | x] = x / (1 + sigma^2)."""
    return x / (1 + sigma**2)


def _eps_model(x_in: torch.Tensor, t: torch.Tensor, _step: int) -> torch.Tensor:
    sigma = _sigma_of(t)
    x = x_in * math.sqrt(sigma**2 + 1)
    return (x - _exact_denoised(x, sigma)) / sigma


def _reference_dpmpp_2s_ancestral(x, sigmas, generator):
    """k-diffusion's sample_dpmpp_2s_ancestral (eta 1, r = 1/2), written from the paper's formulas."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised = _exact_denoised(x, sigma)
        up = (
            min(sigma_next, math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
            if sigma_next
            else 0
        )
        down = math.sqrt(sigma_next**2 - up**2)
        if down == 0:
            x = denoised
        else:
            t, t_next = -math.log(sigma), -math.log(down)
            h = t_next - t
            s = t + h / 2
            x_2 = math.exp(t - s) * x - math.expm1(-h / 2) * denoised
            x = math.exp(t - t_next) * x - math.expm1(-h) * _exact_denoised(x_2, math.exp(-s))
        if sigma_next > 0:
            x = x + torch.randn(x.shape, generator=generator) * up
    return x


def test_dpmpp_2s_ancestral_follows_k_diffusion():
    built = build_scheduler("DPM++ 2S a", "Karras", MODEL)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    ours = loop.sample(
        _eps_model, built, noise, 6, generators=torch.Generator().manual_seed(9), progress_bar=False
    )
    sigmas = torch.unique_consecutive(built.scheduler.sigmas)
    reference = _reference_dpmpp_2s_ancestral(noise * sigmas[0], sigmas, torch.Generator().manual_seed(9))
    assert (ours - reference).abs().max() < 1e-3 * reference.abs().max()


def test_euler_a_with_eta_zero_is_euler():
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    a = loop.sample(
        _eps_model,
        build_scheduler("Euler a", "Karras", MODEL, eta_ancestral=0.0),
        noise,
        8,
        progress_bar=False,
    )
    b = loop.sample(_eps_model, build_scheduler("Euler", "Karras", MODEL), noise, 8, progress_bar=False)
    assert torch.allclose(a, b, atol=1e-5)


def test_euler_a_karras_uses_karras_sigmas():
    karras = build_scheduler("Euler a", "Karras", MODEL).scheduler
    reference = build_scheduler("Euler", "Karras", MODEL).scheduler
    karras.set_timesteps(10)
    reference.set_timesteps(10)
    assert torch.allclose(karras.sigmas, reference.sigmas, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "sampler", "schedule"),
    [
        ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
        ("Euler a", "Euler a", "Automatic"),
        ("k_euler_a", "Euler a", "Automatic"),
        ("dpm++ 2m sde exponential", "DPM++ 2M SDE", "Exponential"),
        ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
    ],
)
def test_old_and_alias_sampler_names_resolve(name, sampler, schedule):
    spec, stype = find_sampler(name)
    assert (spec.name, stype.label) == (sampler, schedule)


@pytest.mark.parametrize(
    ("sampler", "requested", "label"),
    [
        ("DPM++ 2M", "Automatic", "Karras"),
        ("DPM++ 2M SDE", "Automatic", "Exponential"),
        ("Euler a", "Automatic", "Automatic"),
        ("Euler", "SGM Uniform", "SGM Uniform"),
        ("DDIM", "Karras", "Automatic"),
    ],
)
def test_infotext_schedule_label_is_the_one_used(sampler, requested, label):
    assert build_scheduler(sampler, requested, MODEL).schedule.label == label


def test_unknown_names_are_clear_errors():
    with pytest.raises(InvalidRequestError, match="Sampler not found"):
        find_sampler("Nonsense 3000")
    with pytest.raises(InvalidRequestError, match="schedule type"):
        find_sampler("Euler", "wobbly")


@pytest.mark.parametrize("spec", SAMPLERS, ids=lambda s: s.name)
def test_every_sampler_denoises_towards_the_data(spec):
    """On N(0,1) data with the exact denoiser, every sampler ends near unit variance, not at noise scale."""
    noise = torch.randn((4, 4, 16, 16), generator=torch.Generator().manual_seed(0))
    built = build_scheduler(spec.name, "Automatic", MODEL, seed=0)
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    out = loop.sample(_eps_model, built, noise, 20, generators=gens, progress_bar=False)
    assert torch.isfinite(out).all()
    assert 0.3 < out.std().item() < 1.7
