"""k-diffusion's fixed-step samplers, as A1111 runs them, over (model, sigmas, noise source).

`model(x, sigma)` returns the denoised estimate (x0) of latents `x` at noise level `sigma`
(k-diffusion's convention: x = x0 + sigma * eps). `sigmas` is the schedule, ending with 0 (or with a
small sigma for KL Optimal). `noise(sigma, sigma_next)` gives standard normal noise per image. After
every step the sampler calls `steps.done(x, denoised, last=...)` (and `steps.start` first), which reports progress, runs the
engine's step hooks and returns the latents to go on with (hooks may change them).

Each function is the same update as the k-diffusion function of the same name (k-diffusion 0.1.1,
`k_diffusion/sampling.py`, which A1111 1.10 uses); tests run both on the same model and noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from scipy import integrate

from modules.sumi.engine.sampling.noise_sources import NoiseSource
from modules.sumi.engine.sampling.tuning import Churn

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Steps(Protocol):
    """The loop's side of a sampler: `start` with the number of steps it will take (DPM adaptive: an
    estimate), then `done` after each; both return the latents to go on with."""

    def start(self, x: torch.Tensor, total: int) -> torch.Tensor: ...

    def done(self, x: torch.Tensor, denoised: torch.Tensor, *, last: bool) -> torch.Tensor: ...


# k-diffusion calls its per-step callback after the step's derivative in these samplers (edits to the
# callback's `x` then move the step's result, edits to `denoised` do not); the others call it right after
# the model call, which the loop's denoiser does for them (k_loop)
STATE_AFTER_DERIVATIVE = frozenset({"euler", "heun", "dpm_2", "lms"})


def report_state(steps: Steps, x: torch.Tensor, sigma: Any, sigma_hat: Any, denoised: torch.Tensor) -> None:
    """The loop's per-step state callback (A1111's `callback_state`), when the loop has one."""
    state = getattr(steps, "state", None)
    if state is not None:
        state(x, sigma, sigma_hat, denoised)


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The probability-flow ODE derivative dx/dsigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float) -> tuple:
    """(sigma_down, sigma_up): the deterministic target and the fresh noise of an ancestral step."""
    if not eta:
        return sigma_to, 0.0
    up = min(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    return (sigma_to**2 - up**2) ** 0.5, up


def _t(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


def _sigma(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def euler(
    model: Model,
    x,
    sigmas,
    steps: Steps,
    noise: NoiseSource,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    churn = Churn(s_churn, s_tmin, s_tmax, s_noise)
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn.raise_level(x, sigmas, i, noise)
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        report_state(steps, x, sigmas[i], sigma_hat, denoised)
        x = x + d * (sigmas[i + 1] - sigma_hat)
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def euler_ancestral(
    model: Model, x, sigmas, steps: Steps, noise: NoiseSource, eta: float = 1.0
) -> torch.Tensor:
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def heun(
    model: Model,
    x,
    sigmas,
    steps: Steps,
    noise: NoiseSource,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    churn = Churn(s_churn, s_tmin, s_tmax, s_noise)
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn.raise_level(x, sigmas, i, noise)
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        report_state(steps, x, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1]))
            x = x + (d + d_2) / 2 * dt
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def _dpm_2_update(model: Model, x, sigma, sigma_to, d) -> torch.Tensor:
    """DPM-Solver-2: the derivative at the log-midpoint of (sigma, sigma_to) over the whole step."""
    mid = sigma.log().lerp(sigma_to.log(), 0.5).exp()
    x_2 = x + d * (mid - sigma)
    return x + to_d(x_2, mid, model(x_2, mid)) * (sigma_to - sigma)


def dpm_2(
    model: Model,
    x,
    sigmas,
    steps: Steps,
    noise: NoiseSource,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    churn = Churn(s_churn, s_tmin, s_tmax, s_noise)
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn.raise_level(x, sigmas, i, noise)
        denoised = model(x, sigma_hat)
        d = to_d(x, sigma_hat, denoised)
        report_state(steps, x, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            x = _dpm_2_update(model, x, sigma_hat, sigmas[i + 1], d)
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpm_2_ancestral(
    model: Model, x, sigmas, steps: Steps, noise: NoiseSource, eta: float = 1.0
) -> torch.Tensor:
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        d = to_d(x, sigmas[i], denoised)
        if down == 0:
            x = x + d * (down - sigmas[i])
        else:
            x = _dpm_2_update(model, x, sigmas[i], down, d)
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def _lms_coefficient(order: int, t, i: int, j: int) -> float:
    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


def lms(model: Model, x, sigmas, steps: Steps, noise: NoiseSource, order: int = 4) -> torch.Tensor:
    x = steps.start(x, len(sigmas) - 1)
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        report_state(steps, x, sigmas[i], sigmas[i], denoised)
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(cur, sigmas_cpu, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=False))
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpmpp_2s_ancestral(
    model: Model, x, sigmas, steps: Steps, noise: NoiseSource, eta: float = 1.0
) -> torch.Tensor:
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        down, up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * model(x_2, _sigma(s))
        if sigmas[i + 1] > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * up
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpmpp_sde(model: Model, x, sigmas, steps: Steps, noise: NoiseSource, eta: float = 1.0) -> torch.Tensor:
    """DPM-Solver++ (stochastic), r = 1/2."""
    x = steps.start(x, len(sigmas) - 1)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
            s = t + (t_next - t) / 2
            down, up = ancestral_step(_sigma(t), _sigma(s), eta)
            s_ = _t(down)
            x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
            x_2 = x_2 + noise(_sigma(t), _sigma(s)) * up
            denoised_2 = model(x_2, _sigma(s))
            down, up = ancestral_step(_sigma(t), _sigma(t_next), eta)
            t_next_ = _t(down)
            x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_2
            x = x + noise(_sigma(t), _sigma(t_next)) * up
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpmpp_2m(model: Model, x, sigmas, steps: Steps, noise: NoiseSource) -> torch.Tensor:
    x = steps.start(x, len(sigmas) - 1)
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old is None or sigmas[i + 1] == 0:
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * blended
        old = denoised
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpmpp_2m_sde(
    model: Model,
    x,
    sigmas,
    steps: Steps,
    noise: NoiseSource,
    eta: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE; `solver_type` "heun" is A1111's "DPM++ 2M SDE Heun"."""
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    x = steps.start(x, len(sigmas) - 1)
    old, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt()
        old, h_last = denoised, h
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x


def dpmpp_3m_sde(model: Model, x, sigmas, steps: Steps, noise: NoiseSource, eta: float = 1.0) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: third-order multistep with the two previous denoised estimates."""
    x = steps.start(x, len(sigmas) - 1)
    denoised_1 = denoised_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        h = None
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None and h_1 is not None and denoised_1 is not None and denoised_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None and denoised_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta:
                x = x + noise(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt()
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
        x = steps.done(x, denoised, last=i == len(sigmas) - 2)
    return x
