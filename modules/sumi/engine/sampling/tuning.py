"""A1111's "Sampler parameters" settings that change how a k-diffusion sampler runs (A1111 1.10).

- `Churn`: Karras et al.'s stochastic churn for Euler, Heun and DPM2 (`s_churn`, `s_tmin`, `s_tmax`,
  `s_noise`): before each step whose sigma is within [tmin, tmax], noise is added to raise it to
  sigma * (1 + gamma), gamma = min(churn / steps, sqrt(2) - 1), and the model is called there.
- `ScheduleTuning`: the schedule's sigma range and rho (`sigma_min`, `sigma_max`, `rho`; 0 is the
  model's / the schedule's own), the Beta schedule's alpha and beta, and "always discard next-to-last
  sigma".
- `sgm_noise_multiplier`: the starting noise is scaled by sqrt(1 + sigma^2) instead of sigma (SGM).
- `extra_noise` (img2img, A1111's `img2img_extra_noise`): more noise added to the noised init image.
- `UniPCTuning`: A1111's UniPC variant, skip type, order and lower-order-final.
- `UncondSkipping`: CFG without the negative prompt at some model calls: every call while
  `call / total <= early` (A1111's `skip_early_cond`), and every other call (every call with `all_steps`)
  whose sigma is under `min_sigma` (NGMS, `s_min_uncond`). A skipped call's result is the prompt's
  prediction, with AND parts still combined around the first part.

Settings that do not apply to a sampler are dropped by `effective`, so a job, its infotext and the
choice between diffusers' scheduler and Sumi's own k-diffusion loop see only what really runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

CHURN_FUNCTIONS = ("euler", "heun", "dpm_2")  # k-diffusion's samplers that take s_churn (A1111's list)
KARRAS_RHO, POLYEXPONENTIAL_RHO = 7.0, 1.0


@dataclass(frozen=True)
class Churn:
    churn: float = 0.0
    tmin: float = 0.0
    tmax: float = math.inf  # A1111's setting 0 means infinity (see `from_settings`)
    noise: float = 1.0

    @property
    def active(self) -> bool:
        return self.churn > 0

    @classmethod
    def from_settings(cls, churn: float, tmin: float, tmax: float, noise: float) -> Churn:
        return cls(float(churn), float(tmin), float(tmax) or math.inf, float(noise))

    def options(self) -> dict[str, float]:
        """The k-diffusion sampler keyword arguments."""
        return {"s_churn": self.churn, "s_tmin": self.tmin, "s_tmax": self.tmax, "s_noise": self.noise}

    def raise_level(self, x: Any, sigmas: Any, i: int, noise: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
        """(x, sigma_hat) for step `i` of a churn sampler: x with fresh noise raising its level from
        sigmas[i] to sigma_hat. Without churn nothing is drawn; with it a draw is made at every step, as
        k-diffusion does (so each step's noise is the one A1111 gives it), and used where sigmas[i] is
        within [tmin, tmax]."""
        sigma = sigmas[i]
        if not self.active:
            return x, sigma
        gamma = min(self.churn / (len(sigmas) - 1), 2**0.5 - 1) if self.tmin <= sigma <= self.tmax else 0.0
        eps = noise(sigma, sigmas[i + 1]) * self.noise
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            x = x + eps * (sigma_hat**2 - sigma**2) ** 0.5
        return x, sigma_hat


@dataclass(frozen=True)
class ScheduleTuning:
    sigma_min: float = 0.0  # 0: the model's smallest sigma
    sigma_max: float = 0.0  # 0: the model's largest sigma
    rho: float = 0.0  # 0: the schedule's own (Karras 7, Polyexponential 1); other schedules have none
    beta_alpha: float = 0.6
    beta_beta: float = 0.6
    always_discard_penultimate: bool = False

    def changes_sigmas(self, schedule: str) -> bool:
        """Whether the sigmas of `schedule` (a ScheduleType name) differ from its defaults."""
        beta = schedule == "beta" and (self.beta_alpha, self.beta_beta) != (0.6, 0.6)
        return bool(self.sigma_min or self.sigma_max or self.rho or self.always_discard_penultimate or beta)


@dataclass(frozen=True)
class UncondSkipping:
    min_sigma: float = 0.0  # NGMS: 0 off
    all_steps: bool = False  # NGMS at every call under min_sigma, not every other one
    early: float = 0.0  # skip_early_cond: the fraction of model calls from the start; 0 off

    @property
    def active(self) -> bool:
        return self.min_sigma > 0 or self.early > 0

    def reason(self, call: int, total: int, sigma: float | None) -> str | None:
        """Why model call `call` of `total` (0-based) runs without the negative prompt, or None."""
        if self.early > 0 and call / max(total, 1) <= self.early:
            return "early"
        below = self.min_sigma > 0 and sigma is not None and sigma < self.min_sigma
        return "ngms" if below and (call % 2 or self.all_steps) else None


@dataclass(frozen=True)
class UniPCTuning:
    """A1111's UniPC settings: variant (bh1, bh2, vary_coeff), skip type (time_uniform, time_quadratic,
    logSNR), order and lower-order-final (see sampling/unipc.py)."""

    variant: str = "bh1"
    skip_type: str = "time_uniform"
    order: int = 3
    lower_order_final: bool = True

    def options(self) -> dict[str, object]:
        """The UniPC sampler's keyword arguments."""
        return {
            "variant": self.variant,
            "skip_type": self.skip_type,
            "order": max(int(self.order), 1),
            "lower_order_final": self.lower_order_final,
        }


@dataclass(frozen=True)
class SamplerTuning:
    churn: Churn = field(default_factory=Churn)
    schedule: ScheduleTuning = field(default_factory=ScheduleTuning)
    sgm_noise_multiplier: bool = False
    extra_noise: float = 0.0  # img2img only
    skipping: UncondSkipping = field(default_factory=UncondSkipping)
    unipc: UniPCTuning = field(default_factory=UniPCTuning)
    # A1111's `KDiffusionSampler.callback_state` as an extension replaced it (vectorscope-cc): called once
    # per step of a k-diffusion sampler, after its model call and before its update, with k-diffusion's
    # dict {"x", "i", "sigma", "sigma_hat", "denoised"}; edits to those tensors carry on into the step
    step_state: Callable[[dict[str, Any]], None] | None = None

    def needs_k_diffusion(self, schedule: str) -> bool:
        """Only Sumi's own k-diffusion loop runs these (diffusers' schedulers have no place for them)."""
        return (
            self.churn.active
            or self.schedule.changes_sigmas(schedule)
            or self.sgm_noise_multiplier
            or self.step_state is not None
        )


def effective(tuning: SamplerTuning, k_function: str | None, timestep_sampler: bool) -> SamplerTuning:
    """What of `tuning` applies to a sampler (its k-diffusion function; DDIM, PLMS, UniPC, LCM have
    none and run on timesteps): churn only for Euler, Heun and DPM2, the schedule settings and the SGM
    multiplier only for k-diffusion samplers on sigmas, as in A1111. Extra noise and skipping apply to
    every sampler."""
    on_sigmas = k_function is not None and not timestep_sampler
    return replace(
        tuning,
        churn=tuning.churn
        if on_sigmas and k_function in CHURN_FUNCTIONS and tuning.churn.active
        else Churn(),
        schedule=tuning.schedule if on_sigmas else ScheduleTuning(),
        sgm_noise_multiplier=tuning.sgm_noise_multiplier and on_sigmas,
        step_state=tuning.step_state if on_sigmas else None,
    )


def schedule_rho(schedule: str, rho: float) -> float | None:
    """The rho a schedule runs with: the setting where the schedule has a rho and it is set, else None
    (the schedule's default)."""
    default = {"karras": KARRAS_RHO, "polyexponential": POLYEXPONENTIAL_RHO}.get(schedule)
    if default is None or not rho or rho == default:
        return None
    return rho
