"""A1111's sampler parameters for one job: read from the request's fields and the settings, written
into the infotext when they changed what ran (engine/sampling/tuning.py does the work).

A request field (`s_churn`, `s_tmin`, `s_tmax`, `s_noise`, `s_min_uncond`) set to a value wins over
the setting of the same name; null takes the setting. (A1111 1.10 reads the churn settings even when
the request sets the field, so its X/Y/Z "Sigma churn" axis changes nothing; Sumi uses the field.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.tuning import (
    Churn,
    SamplerTuning,
    ScheduleTuning,
    UncondSkipping,
    UniPCTuning,
)
from modules.sumi.services.jobs import a1111_sampler
from modules.sumi.services.scripts.callbacks import CallbackRegistry, ExtraNoiseParams

# the infotext keys of the settings (A1111's writer); paste reads them through the options' infotext
CHURN_KEYS = {"churn": "Sigma churn", "tmin": "Sigma tmin", "tmax": "Sigma tmax", "noise": "Sigma noise"}


def _value(p: Any, field: str, options: Any, option: str) -> float:
    given = getattr(p, field, None)
    value = float(getattr(options, option) if given is None else given)
    if math.isnan(value):
        raise InvalidRequestError(f"{field} is not a number")
    return value


def sampler_tuning(p: Any, options: Any) -> SamplerTuning:
    """The job's sampler parameters (fields over settings)."""
    o = options
    return SamplerTuning(
        churn=Churn.from_settings(
            _value(p, "s_churn", o, "s_churn"),
            _value(p, "s_tmin", o, "s_tmin"),
            _value(p, "s_tmax", o, "s_tmax"),
            _value(p, "s_noise", o, "s_noise"),
        ),
        schedule=ScheduleTuning(
            sigma_min=float(o.sigma_min),
            sigma_max=float(o.sigma_max),
            rho=float(o.rho),
            beta_alpha=float(o.beta_dist_alpha),
            beta_beta=float(o.beta_dist_beta),
            always_discard_penultimate=bool(o.always_discard_next_to_last_sigma),
        ),
        sgm_noise_multiplier=bool(o.sgm_noise_multiplier),
        extra_noise=float(o.img2img_extra_noise),
        skipping=UncondSkipping(
            min_sigma=_value(p, "s_min_uncond", o, "s_min_uncond"),
            all_steps=bool(o.s_min_uncond_all),
            early=float(o.skip_early_cond),
        ),
        unipc=UniPCTuning(
            variant=str(o.uni_pc_variant),
            skip_type=str(o.uni_pc_skip_type),
            order=int(o.uni_pc_order),
            lower_order_final=bool(o.uni_pc_lower_order_final),
        ),
        step_state=a1111_sampler.step_state_for(p),
    )


def fill_fields(p: Any, options: Any) -> None:
    """The fields a request left null take their settings, as A1111's processing object does when it
    is made (scripts read `p.s_churn`, ...; A1111's `s_tmax` 0 is infinity there too)."""
    for name in ("s_min_uncond", "s_churn", "s_tmin", "s_noise"):
        if getattr(p, name, None) is None:
            setattr(p, name, float(getattr(options, name)))
    if getattr(p, "s_tmax", None) is None:
        p.s_tmax = float(options.s_tmax) or math.inf
    if not getattr(p, "ddim_discretize", None):
        p.ddim_discretize = options.ddim_discretize


def record(p: Any, result: engine.BatchResult, *, img2img: bool, discards_already: bool) -> None:
    """The infotext keys A1111 writes for what applied to the batch (`discards_already`: the sampler
    drops the next-to-last sigma by itself, so the setting changed nothing)."""
    params = p.extra_generation_params
    tuning = result.tuning
    churn = tuning.churn
    if churn.active:
        defaults = Churn()
        for name, key in CHURN_KEYS.items():
            value = getattr(churn, name)
            if value != getattr(defaults, name):
                params[key] = value
    schedule = tuning.schedule
    if schedule.sigma_min:
        params["Schedule min sigma"] = schedule.sigma_min
    if schedule.sigma_max:
        params["Schedule max sigma"] = schedule.sigma_max
    if schedule.rho and result.schedule in ("Karras", "Polyexponential"):
        params["Schedule rho"] = schedule.rho
    if result.schedule == "Beta":
        params["Beta schedule alpha"] = schedule.beta_alpha
        params["Beta schedule beta"] = schedule.beta_beta
    if schedule.always_discard_penultimate and not discards_already:
        params["Discard penultimate sigma"] = True
    if tuning.sgm_noise_multiplier:
        params["SGM noise multiplier"] = True
    if img2img and tuning.extra_noise > 0:
        params["Extra noise"] = tuning.extra_noise
    if "early" in result.uncond_skipped:
        params["Skip Early CFG"] = tuning.skipping.early
    if "ngms" in result.uncond_skipped:
        params["NGMS"] = tuning.skipping.min_sigma
        if tuning.skipping.all_steps:
            params["NGMS all steps"] = True


def extra_noise_hook(
    callbacks: CallbackRegistry | None,
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """A1111's `on_extra_noise`: callbacks get ExtraNoiseParams(noise, x, xi) and may replace `noise`."""
    if callbacks is None or not callbacks.has("extra_noise"):
        return None

    def run(noise: torch.Tensor, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        params = ExtraNoiseParams(noise, x, xi)
        callbacks.call("extra_noise", params)
        return params.noise if isinstance(params.noise, torch.Tensor) else noise

    return run
