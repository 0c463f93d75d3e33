"""A1111's schedule types as sigma schedules for the k-diffusion samplers (A1111 1.10 `sd_schedulers`).

A schedule is `steps + 1` noise levels (k-diffusion sigmas, ending with 0) built from the model's
1000 training sigmas, `sigma = sqrt((1 - alpha_bar) / alpha_bar)`. `ModelSigmas` holds them and
k-diffusion's `DiscreteSchedule` conversions between a sigma and a (fractional) training timestep:
log-sigma is interpolated linearly between neighbouring timesteps. The functions below follow the
formulas of A1111's `sd_schedulers.py` and k-diffusion's `get_sigmas_*`; tests compare them with both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

# Align Your Steps noise levels for 10 steps (research.nvidia.com/labs/toronto-ai/AlignYourSteps).
AYS_SD1 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


class ModelSigmas:
    """The model's training noise levels and sigma <-> timestep conversion (k-diffusion, unquantized)."""

    def __init__(self, alphas_cumprod: torch.Tensor) -> None:
        self.alphas_cumprod = alphas_cumprod.to(torch.float32)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelSigmas:
        """From a diffusers scheduler config, as ldm/sgm compute it: betas in float64, then float32."""
        n = int(config.get("num_train_timesteps", 1000))
        start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
        kind = config.get("beta_schedule", "scaled_linear")
        if kind == "scaled_linear":
            betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float64) ** 2
        elif kind == "linear":
            betas = torch.linspace(start, end, n, dtype=torch.float64)
        else:
            raise ValueError(f"beta schedule {kind!r} is not supported by the k-diffusion samplers")
        return cls(torch.cumprod(1 - betas, 0))

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        log_sigma = sigma.to(torch.float32).log()
        dists = log_sigma - self.log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high = low + 1
        lo, hi = self.log_sigmas[low], self.log_sigmas[high]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * high).view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(torch.float32)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros(1)])


@dataclass(frozen=True)
class ScheduleArgs:
    """Everything a schedule function may read."""

    n: int
    sigma_min: float
    sigma_max: float
    model: ModelSigmas
    rho: float | None = None
    is_sdxl: bool = False
    beta_alpha: float = 0.6
    beta_beta: float = 0.6


def uniform(a: ScheduleArgs) -> torch.Tensor:
    """Timesteps evenly spaced from the last to the first (k-diffusion `get_sigmas`; "Automatic")."""
    t = torch.linspace(len(a.model.sigmas) - 1, 0, a.n)
    return _append_zero(a.model.t_to_sigma(t))


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): sigma^(1/rho) evenly spaced from sigma_max to sigma_min, then 0."""
    ramp = torch.linspace(0, 1, n)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def karras(a: ScheduleArgs) -> torch.Tensor:
    return karras_sigmas(a.n, a.sigma_min, a.sigma_max, 7.0 if a.rho is None else a.rho)


def exponential(a: ScheduleArgs) -> torch.Tensor:
    return _append_zero(torch.linspace(math.log(a.sigma_max), math.log(a.sigma_min), a.n).exp())


def polyexponential(a: ScheduleArgs) -> torch.Tensor:
    rho = 1.0 if a.rho is None else a.rho
    ramp = torch.linspace(1, 0, a.n) ** rho
    return _append_zero(
        torch.exp(ramp * (math.log(a.sigma_max) - math.log(a.sigma_min)) + math.log(a.sigma_min))
    )


def sgm_uniform(a: ScheduleArgs) -> torch.Tensor:
    """Timesteps evenly spaced over n + 1 points, the last (sigma_min) dropped (SGM's discretization)."""
    start = a.model.sigma_to_t(torch.tensor(a.sigma_max))
    end = a.model.sigma_to_t(torch.tensor(a.sigma_min))
    ts = torch.linspace(float(start), float(end), a.n + 1)[:-1]
    return _append_zero(torch.stack([a.model.t_to_sigma(t) for t in ts]))


def normal(a: ScheduleArgs) -> torch.Tensor:
    """Timesteps evenly spaced from sigma_max's to sigma_min's, both included."""
    start = a.model.sigma_to_t(torch.tensor(a.sigma_max))
    end = a.model.sigma_to_t(torch.tensor(a.sigma_min))
    ts = torch.linspace(float(start), float(end), a.n)
    return _append_zero(torch.stack([a.model.t_to_sigma(t) for t in ts]))


def kl_optimal(a: ScheduleArgs) -> torch.Tensor:
    """tan of angles evenly spaced between arctan(sigma_max) and arctan(sigma_min) (n + 1 levels, the last
    sigma_min, not 0: A1111's quirk, kept)."""
    alpha_min = torch.arctan(torch.tensor(a.sigma_min))
    alpha_max = torch.arctan(torch.tensor(a.sigma_max))
    idx = torch.arange(a.n + 1)
    return torch.tan(idx / a.n * alpha_min + (1.0 - idx / a.n) * alpha_max)


def align_your_steps(a: ScheduleArgs) -> torch.Tensor:
    """NVIDIA's 10-step tables (SD1 or SDXL), log-linearly interpolated to n steps."""
    table = np.array(AYS_SDXL if a.is_sdxl else AYS_SD1)
    if a.n == len(table):
        values = table
    else:
        xs = np.linspace(0, 1, len(table))
        ys = np.log(table[::-1])
        values = np.exp(np.interp(np.linspace(0, 1, a.n), xs, ys))[::-1].copy()
    return torch.FloatTensor([*values.tolist(), 0.0])


def simple(a: ScheduleArgs) -> torch.Tensor:
    """Every (1000 / n)-th training sigma from the top."""
    stride = len(a.model.sigmas) / a.n
    sigs = [float(a.model.sigmas[-(1 + int(x * stride))]) for x in range(a.n)]
    return torch.FloatTensor([*sigs, 0.0])


def ddim(a: ScheduleArgs) -> torch.Tensor:
    """The training sigmas 1, 1 + k, 1 + 2k, ... (k = 1000 // n), highest first: DDIM's timesteps."""
    stride = max(len(a.model.sigmas) // a.n, 1)
    sigs = [float(a.model.sigmas[x]) for x in range(1, len(a.model.sigmas), stride)]
    return torch.FloatTensor([*sigs[::-1], 0.0])


def beta(a: ScheduleArgs) -> torch.Tensor:
    """Beta-distribution quantiles between sigma_min and sigma_max (arXiv:2407.12173)."""
    ts = [stats.beta.ppf(x, a.beta_alpha, a.beta_beta) for x in 1 - np.linspace(0, 1, a.n)]
    return torch.FloatTensor([*[a.sigma_min + x * (a.sigma_max - a.sigma_min) for x in ts], 0.0])


SCHEDULE_FUNCTIONS: dict[str, Callable[[ScheduleArgs], torch.Tensor]] = {
    "automatic": uniform,
    "uniform": uniform,
    "karras": karras,
    "exponential": exponential,
    "polyexponential": polyexponential,
    "sgm_uniform": sgm_uniform,
    "kl_optimal": kl_optimal,
    "align_your_steps": align_your_steps,
    "simple": simple,
    "normal": normal,
    "ddim": ddim,
    "beta": beta,
}


def schedule_sigmas(
    name: str,
    steps: int,
    model: ModelSigmas,
    *,
    discard_penultimate: bool = False,
    is_sdxl: bool = False,
    rho: float | None = None,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    beta: tuple[float, float] = (0.6, 0.6),
) -> torch.Tensor:
    """`steps + 1` sigmas of schedule `name` (a `ScheduleType.name`) between the model's smallest and
    largest sigma, or `sigma_min`/`sigma_max` where given (A1111's "Schedule min/max sigma"; schedules
    that follow the model's own levels ignore them, as in A1111). `discard_penultimate` (A1111's DPM2
    and DPM++ 3M SDE): one step more is built and its next-to-last level dropped. `beta`: the Beta
    schedule's (alpha, beta)."""
    n = steps + 1 if discard_penultimate else steps
    args = ScheduleArgs(
        n,
        model.sigma_min if sigma_min is None else sigma_min,
        model.sigma_max if sigma_max is None else sigma_max,
        model,
        rho=rho,
        is_sdxl=is_sdxl,
        beta_alpha=beta[0],
        beta_beta=beta[1],
    )
    sigmas = SCHEDULE_FUNCTIONS[name](args).to(torch.float32)
    if discard_penultimate:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas


def ddim_timesteps(steps: int) -> torch.Tensor:
    """A1111's timesteps for its DDIM-style samplers: 1, 1 + k, ... (k = 1000 // steps), ascending."""
    return torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)
