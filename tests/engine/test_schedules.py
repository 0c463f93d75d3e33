"""A1111 1.10's schedule types give A1111's sigmas.

Karras, Exponential, Polyexponential and Automatic/Uniform are compared with k-diffusion's own
functions and `DiscreteSchedule` (tests/engine/k_reference.py); the others with their formulas as
A1111's `modules/sd_schedulers.py` writes them, over k-diffusion's sigma <-> timestep conversion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.sampling.samplers import SCHEDULE_TYPES
from modules.sumi.engine.sampling.schedules import AYS_SD1, AYS_SDXL, ModelSigmas, schedule_sigmas
from tests.engine.k_reference import k_external, k_sampling

STEPS = [1, 2, 3, 10, 20, 37]


def _ldm_alphas_cumprod() -> torch.Tensor:
    """ldm's make_beta_schedule("linear", 1000, 0.00085, 0.012) -> alphas_cumprod, a float32 buffer."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    return torch.tensor(np.cumprod(1.0 - betas, axis=0), dtype=torch.float32)


MODEL = ModelSigmas.from_config(scheduler_config("epsilon"))
WRAP = k_external().DiscreteEpsDDPMDenoiser(None, _ldm_alphas_cumprod(), quantize=False)
SIGMA_MIN, SIGMA_MAX = WRAP.sigmas[0].item(), WRAP.sigmas[-1].item()


def _close(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    assert torch.allclose(ours, reference.to(torch.float32), rtol=1e-5, atol=1e-6), (ours, reference)


def test_model_sigmas_are_the_ldm_models():
    assert torch.allclose(MODEL.sigmas, WRAP.sigmas, rtol=1e-6)
    t = torch.tensor([0.0, 0.4, 17.5, 998.2, 999.0])
    assert torch.allclose(MODEL.t_to_sigma(t), WRAP.t_to_sigma(t), rtol=1e-6)
    sigmas = torch.tensor([SIGMA_MIN, 0.1, 1.0, 7.3, SIGMA_MAX])
    assert torch.allclose(MODEL.sigma_to_t(sigmas), WRAP.sigma_to_t(sigmas), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n", STEPS)
def test_k_diffusion_schedules(n):
    ks = k_sampling()
    _close(schedule_sigmas("automatic", n, MODEL), WRAP.get_sigmas(n))
    _close(schedule_sigmas("uniform", n, MODEL), WRAP.get_sigmas(n))
    _close(schedule_sigmas("karras", n, MODEL), ks.get_sigmas_karras(n, SIGMA_MIN, SIGMA_MAX, rho=7.0))
    _close(schedule_sigmas("exponential", n, MODEL), ks.get_sigmas_exponential(n, SIGMA_MIN, SIGMA_MAX))
    _close(
        schedule_sigmas("polyexponential", n, MODEL),
        ks.get_sigmas_polyexponential(n, SIGMA_MIN, SIGMA_MAX, rho=1.0),
    )


def _timesteps_sigmas(n: int, sgm: bool) -> torch.Tensor:
    """A1111's sgm_uniform (sgm) and normal_scheduler: timesteps from sigma_max's to sigma_min's."""
    start = WRAP.sigma_to_t(torch.tensor(SIGMA_MAX))
    end = WRAP.sigma_to_t(torch.tensor(SIGMA_MIN))
    ts = torch.linspace(start, end, n + 1)[:-1] if sgm else torch.linspace(start, end, n)
    return torch.FloatTensor([*[WRAP.t_to_sigma(t) for t in ts], 0.0])


@pytest.mark.parametrize("n", STEPS)
def test_a1111_timestep_schedules(n):
    _close(schedule_sigmas("sgm_uniform", n, MODEL), _timesteps_sigmas(n, sgm=True))
    _close(schedule_sigmas("normal", n, MODEL), _timesteps_sigmas(n, sgm=False))
    stride = len(WRAP.sigmas) / n
    simple = [float(WRAP.sigmas[-(1 + int(x * stride))]) for x in range(n)]
    _close(schedule_sigmas("simple", n, MODEL), torch.FloatTensor([*simple, 0.0]))
    step = max(len(WRAP.sigmas) // n, 1)
    ddim = [float(WRAP.sigmas[x]) for x in range(1, len(WRAP.sigmas), step)][::-1]
    _close(schedule_sigmas("ddim", n, MODEL), torch.FloatTensor([*ddim, 0.0]))


@pytest.mark.parametrize("n", STEPS)
def test_kl_optimal_and_beta(n):
    idx = torch.arange(n + 1)
    a_min, a_max = torch.arctan(torch.tensor(SIGMA_MIN)), torch.arctan(torch.tensor(SIGMA_MAX))
    _close(schedule_sigmas("kl_optimal", n, MODEL), torch.tan(idx / n * a_min + (1.0 - idx / n) * a_max))
    quantiles = [stats.beta.ppf(x, 0.6, 0.6) for x in 1 - np.linspace(0, 1, n)]
    beta = [SIGMA_MIN + q * (SIGMA_MAX - SIGMA_MIN) for q in quantiles]
    _close(schedule_sigmas("beta", n, MODEL), torch.FloatTensor([*beta, 0.0]))


@pytest.mark.parametrize(("is_sdxl", "table"), [(False, AYS_SD1), (True, AYS_SDXL)])
@pytest.mark.parametrize("n", STEPS)
def test_align_your_steps_tables_interpolate_log_linearly(is_sdxl, table, n):
    ours = schedule_sigmas("align_your_steps", n, MODEL, is_sdxl=is_sdxl)
    if n == len(table):
        expected = [*table, 0.0]
    else:
        ys = np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(table)), np.log(table[::-1]))
        expected = [*np.exp(ys)[::-1].tolist(), 0.0]
    _close(ours, torch.FloatTensor(expected))
    if n > 1:  # one step: A1111's interpolation gives the table's last level, 0.029, alone
        assert math.isclose(float(ours[0]), 14.615, rel_tol=1e-6)
    assert math.isclose(float(ours[-2]), 0.029, rel_tol=1e-6)


def test_the_sd1_and_sdxl_tables_are_nvidias():
    assert AYS_SD1 == (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
    assert AYS_SDXL == (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


@pytest.mark.parametrize("n", [1, 2, 10])
def test_discarding_the_penultimate_sigma_builds_one_step_more(n):
    full = schedule_sigmas("exponential", n + 1, MODEL)
    ours = schedule_sigmas("exponential", n, MODEL, discard_penultimate=True)
    _close(ours, torch.cat([full[:-2], full[-1:]]))


def test_every_schedule_type_has_a_sigma_function():
    for stype in SCHEDULE_TYPES:
        sigmas = schedule_sigmas(stype.name, 8, MODEL)
        assert sigmas.shape == (9,) and torch.isfinite(sigmas).all()
        assert (sigmas[:-1] > 0).all() and (sigmas[:-1].diff() <= 0).all()
