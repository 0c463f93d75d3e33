"""Sumi's k-diffusion samplers give k-diffusion's (and A1111's extra samplers') results.

Each sampler runs on the exact denoiser of a Gaussian data distribution with the same sigmas and the
same noise draws as the reference: k-diffusion 0.1.1's own `sampling.py` (tests/engine/k_reference.py);
Restart and DDIM CFG++ are not in k-diffusion, so their reference is written here from A1111 1.10's
`sd_samplers_extra.restart_sampler` and `sd_samplers_timesteps_impl.ddim_cfgpp`.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.sampling import cfgpp, dpm_solver, k_samplers, restart
from modules.sumi.engine.sampling.noise_sources import BrownianNoise
from modules.sumi.engine.sampling.schedules import ModelSigmas, karras_sigmas
from tests.engine.k_reference import Gaussian, k_sampling

MODEL = ModelSigmas.from_config(scheduler_config("epsilon"))
SHAPE = (2, 4, 6, 6)
DATA = Gaussian()


class Recorder:
    """A `Steps` that changes nothing and records what it is told."""

    def __init__(self) -> None:
        self.total = -1
        self.done_steps: list[bool] = []

    def start(self, x: torch.Tensor, total: int) -> torch.Tensor:
        self.total = total
        return x

    def done(self, x: torch.Tensor, denoised: torch.Tensor, *, last: bool) -> torch.Tensor:
        self.done_steps.append(last)
        return x


class Draws:
    """Noise draws in call order from one seed (the same sequence for Sumi and the reference)."""

    def __init__(self, seed: int = 7) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        self.calls += 1
        return torch.randn(SHAPE, generator=self.generator)


def _start() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))


def _sigmas(steps: int = 10) -> torch.Tensor:
    return karras_sigmas(steps, MODEL.sigma_min, MODEL.sigma_max)


def _close(ours: torch.Tensor, reference: torch.Tensor, rtol: float = 1e-5) -> None:
    assert torch.isfinite(ours).all()
    scale = reference.abs().max()
    assert (ours - reference).abs().max() <= rtol * scale, (ours - reference).abs().max()


K_FIXED = [
    ("euler", {}),
    ("heun", {}),
    ("dpm_2", {}),
    ("lms", {}),
    ("dpmpp_2m", {}),
    ("euler_ancestral", {"eta": 1.0}),
    ("euler_ancestral", {"eta": 0.6}),
    ("dpm_2_ancestral", {"eta": 1.0}),
    ("dpmpp_2s_ancestral", {"eta": 1.0}),
    ("dpmpp_sde", {"eta": 1.0}),
    ("dpmpp_2m_sde", {"eta": 1.0}),
    ("dpmpp_2m_sde", {"eta": 1.0, "solver_type": "heun"}),
    ("dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}),
    ("dpmpp_3m_sde", {"eta": 1.0}),
    ("dpmpp_3m_sde", {"eta": 0.5}),
]


@pytest.mark.parametrize(("name", "options"), K_FIXED, ids=lambda v: str(v))
@pytest.mark.parametrize("steps", [1, 2, 10])
def test_fixed_step_samplers_equal_k_diffusion(name, options, steps):
    sigmas = _sigmas(steps)
    x = _start() * sigmas[0]
    reference_fn = getattr(k_sampling(), f"sample_{name}")
    kwargs = dict(options)
    if "noise_sampler" in inspect.signature(reference_fn).parameters:
        kwargs["noise_sampler"] = Draws()
    if steps == 1 and name in ("dpmpp_2m_sde", "dpmpp_3m_sde"):
        # k-diffusion fails here (UnboundLocalError on `h`); its one step is the denoising step
        reference = DATA.denoised(x, sigmas[0])
    else:
        reference = reference_fn(DATA.denoised, x.clone(), sigmas, disable=True, **kwargs)
    recorder = Recorder()
    ours = getattr(k_samplers, name)(DATA.denoised, x.clone(), sigmas, recorder, Draws(), **options)
    _close(ours, reference)
    assert recorder.total == steps and recorder.done_steps == [False] * (steps - 1) + [True]


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 20])
def test_dpm_fast_equals_k_diffusion(n, eta):
    x = _start() * MODEL.sigma_max
    reference = k_sampling().sample_dpm_fast(
        DATA.denoised,
        x.clone(),
        MODEL.sigma_min,
        MODEL.sigma_max,
        n,
        disable=True,
        eta=eta,
        noise_sampler=Draws(),
    )
    calls = []

    def counted(x, sigma):
        calls.append(sigma)
        return DATA.denoised(x, sigma)

    recorder = Recorder()
    ours = dpm_solver.dpm_fast(
        counted, x.clone(), MODEL.sigma_min, MODEL.sigma_max, n, recorder, Draws(), eta=eta
    )
    _close(ours, reference)
    assert len(calls) == n  # DPM fast spends exactly n model calls
    assert recorder.done_steps[-1] is True and recorder.done_steps.count(True) == 1


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpm_adaptive_equals_k_diffusion_and_reports_every_step(eta):
    x = _start() * MODEL.sigma_max
    reference, info = k_sampling().sample_dpm_adaptive(
        DATA.denoised,
        x.clone(),
        MODEL.sigma_min,
        MODEL.sigma_max,
        disable=True,
        eta=eta,
        noise_sampler=Draws(),
        return_info=True,
    )
    recorder = Recorder()
    ours = dpm_solver.dpm_adaptive(
        DATA.denoised, x.clone(), MODEL.sigma_min, MODEL.sigma_max, 20, recorder, Draws(), eta=eta
    )
    _close(ours, reference, rtol=1e-4)
    assert len(recorder.done_steps) == info["steps"] and recorder.done_steps[-1] is True


def _reference_restart(model, x, sigmas, draws):
    """A1111 1.10 sd_samplers_extra.restart_sampler with its automatic restart list."""
    ks = k_sampling()

    def heun_step(x, old_sigma, new_sigma):
        denoised = model(x, old_sigma)
        d = (x - denoised) / old_sigma
        dt = new_sigma - old_sigma
        if new_sigma == 0:
            return x + d * dt
        x_2 = x + d * dt
        d_2 = (x_2 - model(x_2, new_sigma)) / new_sigma
        return x + (d + d_2) / 2 * dt

    steps = sigmas.shape[0] - 1
    restart_list = {}
    if steps >= 20:
        restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
        sigmas = ks.get_sigmas_karras(
            steps - restart_steps * restart_times, sigmas[-2].item(), sigmas[0].item()
        )
        restart_list = {0.1: [restart_steps + 1, restart_times, 2]}
    restart_list = {int(torch.argmin(abs(sigmas - key), dim=0)): value for key, value in restart_list.items()}
    step_list = []
    for i in range(len(sigmas) - 1):
        step_list.append((sigmas[i], sigmas[i + 1]))
        if i + 1 in restart_list:
            restart_steps, restart_times, restart_max = restart_list[i + 1]
            min_idx, max_idx = i + 1, int(torch.argmin(abs(sigmas - restart_max), dim=0))
            if max_idx < min_idx:
                sigma_restart = ks.get_sigmas_karras(
                    restart_steps, sigmas[min_idx].item(), sigmas[max_idx].item()
                )[:-1]
                for _ in range(restart_times):
                    step_list.extend(zip(sigma_restart[:-1], sigma_restart[1:], strict=True))
    last_sigma = None
    for old_sigma, new_sigma in step_list:
        if last_sigma is None:
            last_sigma = old_sigma
        elif last_sigma < old_sigma:
            x = x + draws() * (old_sigma**2 - last_sigma**2) ** 0.5
        x = heun_step(x, old_sigma, new_sigma)
        last_sigma = new_sigma
    return x, len(step_list)


@pytest.mark.parametrize("steps", [1, 2, 10, 20, 36, 40])
def test_restart_equals_a1111(steps):
    sigmas = _sigmas(steps)
    x = _start() * sigmas[0]
    reference, planned = _reference_restart(DATA.denoised, x.clone(), sigmas, Draws())
    recorder = Recorder()
    draws = Draws()
    ours = restart.restart(DATA.denoised, x.clone(), sigmas, recorder, draws)
    _close(ours, reference)
    assert recorder.total == planned == len(recorder.done_steps)
    assert (draws.calls > 0) == (steps >= 20)  # restarts (fresh noise) from 20 steps on


COND, UNCOND = Gaussian(0.5, 0.7), Gaussian(-0.2, 1.1)


def _eps(data: Gaussian, x_vp: torch.Tensor, a: float) -> torch.Tensor:
    """The noise prediction of `data`'s exact denoiser in variance-preserving latents."""
    sigma = math.sqrt((1 - a) / a)
    x = x_vp / math.sqrt(a)
    return (x - data.denoised(x, sigma)) / sigma


def _reference_ddim_cfgpp(x, timesteps, alphas_cumprod, cfg, eta, draws):
    """A1111 1.10 sd_samplers_timesteps_impl.ddim_cfgpp; the CFG denoiser scales cfg by 1 / 12.5."""
    alphas = alphas_cumprod[timesteps]
    alphas_prev = alphas_cumprod[torch.nn.functional.pad(timesteps[:-1], pad=(1, 0))].to(torch.float64)
    sqrt_one_minus_alphas = torch.sqrt(1 - alphas)
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    for i in range(len(timesteps) - 1):
        index = len(timesteps) - 1 - i
        a = float(alphas[index])
        uncond = _eps(UNCOND, x, a)
        e_t = uncond + cfg / 12.5 * (_eps(COND, x, a) - uncond)
        a_t, a_prev = alphas[index].item(), alphas_prev[index].item()
        sigma_t, s1 = sigmas[index].item(), sqrt_one_minus_alphas[index].item()
        pred_x0 = (x - s1 * e_t) / math.sqrt(a_t)
        dir_xt = math.sqrt(1.0 - a_prev - sigma_t**2) * uncond
        x = math.sqrt(a_prev) * pred_x0 + dir_xt + sigma_t * draws()
    return x


@pytest.mark.parametrize("eta", [0.0, 0.7])
@pytest.mark.parametrize("steps", [2, 5, 20])
def test_ddim_cfgpp_equals_a1111(steps, eta):
    from modules.sumi.engine.sampling.schedules import ddim_timesteps

    cfg = 7.0
    timesteps = ddim_timesteps(steps)
    x = _start()
    reference = _reference_ddim_cfgpp(x.clone(), timesteps, MODEL.alphas_cumprod, cfg, eta, Draws())

    def model(x_vp, t):
        a = float(MODEL.alphas_cumprod[t])
        uncond = _eps(UNCOND, x_vp, a)
        return uncond + cfg / cfgpp.CFG_DIVISOR * (_eps(COND, x_vp, a) - uncond), uncond

    recorder = Recorder()
    ours = cfgpp.ddim_cfgpp(model, x.clone(), timesteps, MODEL.alphas_cumprod, recorder, Draws(), eta=eta)
    _close(ours, reference)
    assert recorder.total == steps - 1  # A1111's DDIM stops at timestep 1's level


def test_brownian_noise_equals_k_diffusions_per_seed_trees():
    sigmas = _sigmas(8)
    x = torch.zeros(SHAPE)
    ours = BrownianNoise(x, float(sigmas[-2]), float(sigmas[0]), [11, 12])
    reference = k_sampling().BrownianTreeNoiseSampler(x, sigmas[-2], sigmas[0], seed=[11, 12])
    for i in range(len(sigmas) - 2):
        _close(ours(sigmas[i], sigmas[i + 1]), reference(sigmas[i], sigmas[i + 1]))
    single = BrownianNoise(x[1:], float(sigmas[-2]), float(sigmas[0]), [12])
    assert torch.equal(single(sigmas[2], sigmas[3])[0], ours(sigmas[2], sigmas[3])[1])
