"""UniPC (Zhao et al. 2023, arXiv:2302.04867) as A1111 runs it: its "UniPC" sampler, the UniPC authors'
multistep solver with A1111's variant, skip type, order and lower-order-final settings.

The model is treated as a discrete-time variance-preserving one: step n of N training steps is the time
t = (n + 1) / N, log(alpha_t) = log(alpha_bar_n) / 2 is interpolated linearly between the steps, and
the model is called at the training timestep (t - 1 / N) * N (fractional between steps). txt2img solves
from t = 1 down to 1 / N; img2img from the last of its timesteps (+1) / 1000, as A1111 does. Every step
predicts the data (x0) with the UniPC predictor and corrects it with the model's prediction at the new
time (the corrector), except the last step; the first steps use lower orders until enough predictions
exist. Variants: B(h) = h ("bh1", A1111's default) or e^h - 1 ("bh2"), or "vary_coeff" (the paper's
varying-coefficient form). A run of n steps calls the model n times.
"""

from __future__ import annotations

from typing import Protocol

import torch

from modules.sumi.engine.host_values import scalar_on
from modules.sumi.engine.sampling.k_samplers import Steps
from modules.sumi.engine.sampling.noise_sources import NoiseSource

VARIANTS = ("bh1", "bh2", "vary_coeff")
SKIP_TYPES = ("time_uniform", "time_quadratic", "logSNR")


class EpsAtTime(Protocol):
    def __call__(self, x: torch.Tensor, timestep: float, /) -> torch.Tensor:
        """The (guided) noise prediction at a training timestep, which may lie between two."""
        ...


class DiscreteVP:
    """A discrete-time VP schedule in continuous time t in (0, 1]: log(alpha_t) linear between steps."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.total = len(alphas_cumprod)
        self.times = torch.linspace(0.0, 1.0, self.total + 1)[1:]
        self.log_alphas = 0.5 * torch.log(alphas_cumprod.to(torch.float32).cpu())

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        return _interpolate(t, self.times, self.log_alphas)

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_alpha(t)))

    def half_log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda_t = log(alpha_t) - log(sigma_t)."""
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alpha))

    def time_of(self, half_log_snr: torch.Tensor) -> torch.Tensor:
        """The t whose lambda_t is given (log(alpha) is monotonic in t)."""
        log_alpha = -0.5 * torch.logaddexp(torch.zeros(1), -2.0 * half_log_snr)
        return _interpolate(log_alpha, self.log_alphas.flip(0), self.times.flip(0))

    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        return (t - 1.0 / self.total) * 1000.0


def _interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear f(x) through (xp, fp), xp ascending; the end segments extend beyond the ends."""
    flat = x.reshape(-1).to(torch.float32)
    right = torch.searchsorted(xp, flat, right=True).clamp(1, len(xp) - 1)
    left = right - 1
    x0, x1, y0, y1 = xp[left], xp[right], fp[left], fp[right]
    return (y0 + (flat - x0) * (y1 - y0) / (x1 - x0)).reshape(x.shape)


def time_grid(vp: DiscreteVP, skip_type: str, t_start: float | torch.Tensor, t_end: float, steps: int):
    """The steps + 1 times from t_start down to t_end."""
    start = torch.as_tensor(t_start, dtype=torch.float32)
    if skip_type == "logSNR":
        high, low = vp.half_log_snr(start.reshape(1)), vp.half_log_snr(torch.tensor([t_end]))
        return vp.time_of(torch.linspace(float(high), float(low), steps + 1))
    if skip_type == "time_quadratic":
        return torch.linspace(float(start**0.5), t_end**0.5, steps + 1).pow(2)
    if skip_type == "time_uniform":
        return torch.linspace(float(start), t_end, steps + 1)
    raise ValueError(f"UniPC skip type must be one of {', '.join(SKIP_TYPES)}; got {skip_type!r}")


def start_time(levels: torch.Tensor, is_img2img: bool) -> float | torch.Tensor:
    """Where A1111 starts: t = 1, or for img2img just above the last of the timesteps it runs."""
    if not is_img2img:
        return 1.0
    return levels[-1].to(torch.float32) / 1000 + 1 / 1000


def model_timesteps(
    levels: torch.Tensor, alphas_cumprod: torch.Tensor, is_img2img: bool, skip_type: str
) -> torch.Tensor:
    """The training timesteps the model is called at, one per step, highest first (none for no steps:
    img2img at a denoising strength too low for one step)."""
    if len(levels) == 0:
        return torch.zeros(0)
    vp = DiscreteVP(alphas_cumprod)
    times = time_grid(vp, skip_type, start_time(levels, is_img2img), 1.0 / vp.total, len(levels))
    return vp.model_timestep(times[:-1])


class _Solver:
    """The UniPC predictor-corrector in data (x0) prediction."""

    def __init__(self, model: EpsAtTime, vp: DiscreteVP, variant: str) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"UniPC variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
        self.model, self.vp, self.variant = model, vp, variant

    def data_prediction(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = self.model(x, float(self.vp.model_timestep(t)))
        return (x - scalar_on(self.vp.std(t), x.device) * eps) / scalar_on(self.vp.alpha(t), x.device)

    def step(
        self,
        x: torch.Tensor,
        previous: list[torch.Tensor],
        times: list[torch.Tensor],
        t: torch.Tensor,
        order: int,
        correct: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x at time t from the last `order` x0 predictions; with `correct`, also the model's x0 at t."""
        if self.variant == "vary_coeff":
            return self._varying_coefficients(x, previous, times, t, order, correct)
        return self._bh(x, previous, times, t, order, correct)

    def _differences(self, previous, times, t, order):
        """h = lambda_t - lambda_prev, r_k, and the scaled differences D_k of the earlier predictions."""
        vp = self.vp
        lambda_prev = vp.half_log_snr(times[-1])
        h = vp.half_log_snr(t) - lambda_prev
        ratios, differences = [], []
        for i in range(1, order):
            ratio = (vp.half_log_snr(times[-(i + 1)]) - lambda_prev) / h
            ratios.append(ratio)
            differences.append((previous[-(i + 1)] - previous[-1]) / scalar_on(ratio, previous[-1].device))
        return h, ratios, differences

    def _base(self, x: torch.Tensor, x0: torch.Tensor, t_prev: torch.Tensor, t: torch.Tensor, h_phi_1):
        vp, device = self.vp, x.device
        return (
            scalar_on(vp.std(t) / vp.std(t_prev), device) * x - scalar_on(vp.alpha(t) * h_phi_1, device) * x0
        )

    def _bh(self, x, previous, times, t, order, correct):
        h, ratios, differences = self._differences(previous, times, t, order)
        hh = -h
        h_phi_1 = torch.expm1(hh)
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        rks = torch.tensor([float(r) for r in ratios] + [1.0])
        rows, b = [], []
        h_phi_k, factorial = h_phi_1 / hh - 1, 1
        for i in range(1, order + 1):
            rows.append(rks ** (i - 1))
            b.append(float(h_phi_k * factorial / b_h))
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        r_matrix, b_vector = torch.stack(rows), torch.tensor(b)
        scale = scalar_on(self.vp.alpha(t) * b_h, x.device)
        base = self._base(x, previous[-1], times[-1], t, h_phi_1)
        x_t = base
        if differences:
            rhos_p = (
                torch.tensor([0.5]) if order == 2 else torch.linalg.solve(r_matrix[:-1, :-1], b_vector[:-1])
            )
            x_t = base - scale * _weighted(rhos_p, differences)
        if not correct:
            return x_t, None
        rhos_c = torch.tensor([0.5]) if order == 1 else torch.linalg.solve(r_matrix, b_vector)
        model_t = self.data_prediction(x_t, t)
        corrected = _weighted(rhos_c[:-1], differences) if differences else 0
        return base - scale * (corrected + float(rhos_c[-1]) * (model_t - previous[-1])), model_t

    def _varying_coefficients(self, x, previous, times, t, order, correct):
        h, ratios, differences = self._differences(previous, times, t, order)
        rks = torch.tensor([float(r) for r in ratios] + [1.0])
        count = len(rks)
        columns, column = [], torch.ones_like(rks)
        for k in range(1, count + 1):
            columns.append(column)
            column = column * rks / (k + 1)
        c_matrix = torch.stack(columns, dim=1)
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phis, h_phi_k, factorial = [], h_phi_1, 1
        for k in range(1, count + 2):
            h_phis.append(h_phi_k)
            h_phi_k = h_phi_k / hh - 1 / factorial
            factorial *= k + 1
        alpha_t = self.vp.alpha(t)
        base = self._base(x, previous[-1], times[-1], t, h_phi_1)
        x_t = base
        if differences:
            a_p = torch.linalg.inv(c_matrix[:-1, :-1])
            for k in range(count - 1):
                x_t = x_t - scalar_on(alpha_t * h_phis[k + 1], x.device) * _weighted(a_p[k], differences)
        if not correct:
            return x_t, None
        a_c = torch.linalg.inv(c_matrix)
        model_t = self.data_prediction(x_t, t)
        x_t, row = base, 0
        for row in range(count - 1):
            x_t = x_t - scalar_on(alpha_t * h_phis[row + 1], x.device) * _weighted(a_c[row][:-1], differences)
        # the authors' code weighs the new prediction with the last row its loop reached (kept for equal pictures)
        last = scalar_on(alpha_t * h_phis[count], x.device) * float(a_c[row][-1])
        return x_t - last * (model_t - previous[-1]), model_t


def _weighted(weights: torch.Tensor, tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0] * float(weights[0])
    for weight, tensor in zip(weights[1:].tolist(), tensors[1:], strict=True):
        total = total + tensor * weight
    return total


def unipc(
    model: EpsAtTime,
    x: torch.Tensor,
    levels: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    steps: Steps,
    noise: NoiseSource,
    *,
    is_img2img: bool = False,
    variant: str = "bh1",
    skip_type: str = "time_uniform",
    order: int = 3,
    lower_order_final: bool = True,
) -> torch.Tensor:
    """Run UniPC over A1111's `levels` (its timesteps, ascending: their count is the number of steps).
    `noise` is not drawn from: UniPC is deterministic. An order above the steps is lowered to them (A1111
    refuses the job)."""
    del noise
    vp = DiscreteVP(alphas_cumprod)
    count = len(levels)
    order = max(1, min(int(order), count))
    grid = time_grid(vp, skip_type, start_time(levels, is_img2img), 1.0 / vp.total, count)
    solver = _Solver(model, vp, variant)
    x = steps.start(x, count)
    times = [grid[0].reshape(1)]
    previous = [solver.data_prediction(x, times[0])]
    for n in range(1, count + 1):
        t = grid[n].reshape(1)
        warming_up = n < order
        step_order = n if warming_up else (min(order, count + 1 - n) if lower_order_final else order)
        last = n == count
        x, model_x = solver.step(x, previous, times, t, step_order, correct=not last)
        if model_x is None and not last:
            model_x = solver.data_prediction(x, t)
        x = steps.done(x, x if model_x is None else model_x, last=last)
        if model_x is None:  # the last step: no prediction is needed after it
            break
        if warming_up:
            previous, times = [*previous, model_x], [*times, t]
        else:
            previous, times = [*previous[1:], model_x], [*times[1:], t]
    return x


__all__ = ["SKIP_TYPES", "VARIANTS", "DiscreteVP", "model_timesteps", "time_grid", "unipc"]
