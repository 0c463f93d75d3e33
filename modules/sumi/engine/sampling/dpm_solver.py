"""DPM fast and DPM adaptive: DPM-Solver (arXiv:2206.00927) as k-diffusion's `DPMSolver` runs it.

Both work in t = -log(sigma) between the schedule's largest and smallest sigma, not on its levels.
DPM fast spends exactly `n` model calls in steps of order 3 (the last ones 2 and 1); DPM adaptive picks
its step sizes with an error-controlled PID controller, so its number of steps is not known ahead: it
plans `n` steps for progress and reports every step it takes. With eta > 0 (A1111 passes its
`eta_ancestral`, 1 by default) every step adds ancestral noise.
"""

from __future__ import annotations

import math

import torch

from modules.sumi.engine.sampling.k_samplers import Model, Steps, ancestral_step
from modules.sumi.engine.sampling.noise_sources import NoiseSource


def _sigma(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def _t(sigma: torch.Tensor) -> torch.Tensor:
    return -sigma.log()


class _Solver:
    """The model as a noise predictor in t, with a per-step cache of its evaluations."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.cache: dict[str, torch.Tensor] = {}

    def eps(self, key: str, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if key not in self.cache:
            self.cache[key] = (x - self.model(x, _sigma(t))) / _sigma(t)
        return self.cache[key]

    def step_1(self, x, t, t_next) -> torch.Tensor:
        h = t_next - t
        return x - _sigma(t_next) * h.expm1() * self.eps("eps", x, t)

    def step_2(self, x, t, t_next, r1: float = 1 / 2) -> torch.Tensor:
        h = t_next - t
        eps = self.eps("eps", x, t)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps("eps_r1", u1, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, r1: float = 1 / 3, r2: float = 2 / 3) -> torch.Tensor:
        h = t_next - t
        eps = self.eps("eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps("eps_r1", u1, s1)
        u2 = (
            x
            - _sigma(s2) * (r2 * h).expm1() * eps
            - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps)
        )
        eps_r2 = self.eps("eps_r2", u2, s2)
        return (
            x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)
        )


def _noise_target(t, t_next, t_end, eta: float):
    """(t to step to, noise amount) of an ancestral step from t to t_next (no noise when eta is 0)."""
    if not eta:
        return t_next, 0.0
    down, _ = ancestral_step(_sigma(t), _sigma(t_next), eta)
    target = torch.minimum(t_end, _t(down))
    return target, (_sigma(t_next) ** 2 - _sigma(target) ** 2) ** 0.5


def dpm_fast(
    model: Model,
    x: torch.Tensor,
    sigma_min: float,
    sigma_max: float,
    n: int,
    steps: Steps,
    noise: NoiseSource,
    eta: float = 0.0,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """`n` model calls: floor(n / 3) + 1 steps evenly spaced in t."""
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    t_start, t_end = _t(torch.tensor(sigma_max)), _t(torch.tensor(sigma_min))
    m = math.floor(n / 3) + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1)  # on the host: no sync per step
    orders = [3] * (m - 2) + [2, 1] if n % 3 == 0 else [3] * (m - 1) + [n % 3]
    x = steps.start(x, len(orders))
    solver = _Solver(model)
    for i, order in enumerate(orders):
        solver.cache = {}
        t, t_next = ts[i], ts[i + 1]
        target, su = _noise_target(t, t_next, t_end, eta)
        denoised = x - _sigma(t) * solver.eps("eps", x, t)
        step = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}[order]
        x = step(x, t, target)
        x = x + su * s_noise * noise(_sigma(t), _sigma(t_next))
        x = steps.done(x, denoised, last=i == len(orders) - 1)
    return x


class _PID:
    """k-diffusion's PID step-size controller (integral-only with its defaults)."""

    def __init__(self, h: float, pcoeff: float, icoeff: float, dcoeff: float, order: float, safety: float):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.safety = safety
        self.errs: list[float] = []

    def propose(self, error: torch.Tensor) -> bool:
        inv = 1 / (float(error) + 1e-8)
        if not self.errs:
            self.errs = [inv, inv, inv]
        self.errs[0] = inv
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)
        accept = factor >= self.safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


def dpm_adaptive(
    model: Model,
    x: torch.Tensor,
    sigma_min: float,
    sigma_max: float,
    n: int,
    steps: Steps,
    noise: NoiseSource,
    eta: float = 0.0,
    s_noise: float = 1.0,
    order: int = 3,
    rtol: float = 0.05,
    atol: float = 0.0078,
    h_init: float = 0.05,
    pcoeff: float = 0.0,
    icoeff: float = 1.0,
    dcoeff: float = 0.0,
    accept_safety: float = 0.81,
) -> torch.Tensor:
    """Embedded order-2/3 pairs; a step is kept when their difference is within the tolerances. Every
    attempt (kept or not) is one reported step, as k-diffusion's callback counts them."""
    if sigma_min <= 0 or sigma_max <= 0:
        raise ValueError("sigma_min and sigma_max must not be 0")
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    t_start, t_end = _t(torch.tensor(sigma_max)), _t(torch.tensor(sigma_min))
    x = steps.start(x, n)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    s, x_prev = t_start, x
    pid = _PID(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    solver = _Solver(model)
    while s < t_end - 1e-5:
        solver.cache = {}
        t = torch.minimum(t_end, s + pid.h)
        target, su = _noise_target(s, t, t_end, eta)
        denoised = x - _sigma(s) * solver.eps("eps", x, s)
        if order == 2:
            x_low, x_high = solver.step_1(x, s, target), solver.step_2(x, s, target)
        else:
            x_low, x_high = solver.step_2(x, s, target, r1=1 / 3), solver.step_3(x, s, target)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if pid.propose(error):
            x_prev = x_low
            x = x_high + su * s_noise * noise(_sigma(s), _sigma(t))
            s = t
        x = steps.done(x, denoised, last=not bool(s < t_end - 1e-5))
    return x
