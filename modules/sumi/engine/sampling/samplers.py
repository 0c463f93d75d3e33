"""A1111 sampler and schedule-type names mapped onto diffusers schedulers.

A sampler is a scheduler class plus config; a schedule type is a config change on top of it
(Karras sigmas, exponential sigmas, ...). `build_scheduler` resolves both names the way A1111 does,
including pre-1.9 names such as "DPM++ 2M Karras", and reports the schedule label for the infotext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import torch
from diffusers import (
    ConfigMixin,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.ancestral import (
    DPM2AncestralScheduler,
    DPMPP2SAncestralScheduler,
    EulerAncestralEtaScheduler,
)
from modules.sumi.engine.sampling.k_loop import KSampler
from modules.sumi.engine.sampling.lcm import LCMHostNoiseScheduler
from modules.sumi.engine.sampling.schedules import ModelSigmas
from modules.sumi.engine.sampling.tuning import SamplerTuning, effective

SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass(frozen=True)
class ScheduleType:
    """One A1111 schedule type. `config`: the diffusers scheduler config that gives it, None where
    diffusers has none (then Sumi's k-diffusion samplers run it, `engine.sampling.schedules`)."""

    label: str
    name: str
    config: dict[str, Any] | None
    aliases: tuple[str, ...] = ()
    default_rho: float = -1
    need_inner_model: bool = False


SCHEDULE_TYPES: tuple[ScheduleType, ...] = (
    ScheduleType("Automatic", "automatic", {}),
    ScheduleType("Uniform", "uniform", {"timestep_spacing": "linspace"}, need_inner_model=True),
    ScheduleType("Karras", "karras", {"use_karras_sigmas": True}, default_rho=7.0),
    ScheduleType("Exponential", "exponential", {"use_exponential_sigmas": True}),
    ScheduleType("Polyexponential", "polyexponential", None, default_rho=1.0),
    ScheduleType(
        "SGM Uniform", "sgm_uniform", {"timestep_spacing": "trailing"}, ("SGMUniform",), need_inner_model=True
    ),
    ScheduleType("KL Optimal", "kl_optimal", None),
    ScheduleType("Align Your Steps", "align_your_steps", None),
    ScheduleType("Simple", "simple", None, need_inner_model=True),
    ScheduleType("Normal", "normal", None, need_inner_model=True),
    ScheduleType("DDIM", "ddim", None, need_inner_model=True),
    ScheduleType("Beta", "beta", {"use_beta_sigmas": True}, need_inner_model=True),
)


@dataclass(frozen=True)
class SamplerSpec:
    """One A1111 sampler: how to build its scheduler and the flags A1111 attaches to it.

    `scheduler_class` is the diffusers scheduler that runs it; `k_function` names Sumi's k-diffusion
    implementation (`engine.sampling.k_loop.FUNCTIONS`), used when there is no diffusers class or the
    schedule type has no diffusers config."""

    name: str
    scheduler_class: type[SchedulerMixin] | None
    aliases: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    default_schedule: str = "automatic"
    schedules: bool = True  # False: the sampler ignores the schedule type (DDIM, PLMS, LCM)
    second_order: bool = False
    uses_ensd: bool = False
    uses_eta: str | None = None  # "ancestral" | "ddim": which A1111 eta setting applies
    timestep_sampler: bool = False  # A1111 runs it as a CompVis timestep sampler (DDIM, PLMS, UniPC)
    k_function: str | None = None
    brownian_noise: bool = False  # A1111's per-seed Brownian tree noise
    discard_next_to_last_sigma: bool = False
    solver_type: str | None = None  # DPM++ 2M SDE's "midpoint" (default) or "heun"

    @property
    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if self.default_schedule != "automatic":
            opts["scheduler"] = self.default_schedule
        if self.discard_next_to_last_sigma:
            opts["discard_next_to_last_sigma"] = True
        if self.uses_ensd:
            opts["uses_ensd"] = True
        if self.second_order:
            opts["second_order"] = True
        if self.brownian_noise:
            opts["brownian_noise"] = True
        if self.solver_type is not None:
            opts["solver_type"] = self.solver_type
        return opts


K_SPACING = {"timestep_spacing": "linspace"}
DPMPP = {"algorithm_type": "dpmsolver++", "solver_order": 2, **K_SPACING}

SAMPLERS: tuple[SamplerSpec, ...] = (
    SamplerSpec(
        "DPM++ 2M", DPMSolverMultistepScheduler, ("k_dpmpp_2m",), DPMPP, "karras", k_function="dpmpp_2m"
    ),
    SamplerSpec(
        "DPM++ SDE",
        DPMSolverSDEScheduler,
        ("k_dpmpp_sde",),
        K_SPACING,
        "karras",
        second_order=True,
        k_function="dpmpp_sde",
        brownian_noise=True,
    ),
    SamplerSpec(
        "DPM++ 2M SDE",
        DPMSolverMultistepScheduler,
        ("k_dpmpp_2m_sde",),
        {**DPMPP, "algorithm_type": "sde-dpmsolver++"},
        "exponential",
        k_function="dpmpp_2m_sde",
    ),
    SamplerSpec(
        "DPM++ 2M SDE Heun",
        None,
        ("k_dpmpp_2m_sde_heun",),
        default_schedule="exponential",
        k_function="dpmpp_2m_sde",
        brownian_noise=True,
        solver_type="heun",
        uses_eta="ancestral",
    ),
    SamplerSpec(
        "DPM++ 2S a",
        DPMPP2SAncestralScheduler,
        ("k_dpmpp_2s_a",),
        K_SPACING,
        "karras",
        second_order=True,
        uses_ensd=True,
        k_function="dpmpp_2s_ancestral",
    ),
    SamplerSpec(
        "DPM++ 3M SDE",
        None,
        ("k_dpmpp_3m_sde",),
        default_schedule="exponential",
        k_function="dpmpp_3m_sde",
        brownian_noise=True,
        discard_next_to_last_sigma=True,
        uses_eta="ancestral",
    ),
    SamplerSpec(
        "Euler a",
        EulerAncestralEtaScheduler,
        ("k_euler_a", "k_euler_ancestral"),
        K_SPACING,
        uses_ensd=True,
        uses_eta="ancestral",
        k_function="euler_ancestral",
    ),
    SamplerSpec("Euler", EulerDiscreteScheduler, ("k_euler",), K_SPACING, k_function="euler"),
    SamplerSpec("LMS", LMSDiscreteScheduler, ("k_lms",), K_SPACING, k_function="lms"),
    SamplerSpec("Heun", HeunDiscreteScheduler, ("k_heun",), K_SPACING, second_order=True, k_function="heun"),
    SamplerSpec(
        "DPM2",
        KDPM2DiscreteScheduler,
        ("k_dpm_2",),
        K_SPACING,
        "karras",
        second_order=True,
        k_function="dpm_2",
    ),
    SamplerSpec(
        "DPM2 a",
        DPM2AncestralScheduler,
        ("k_dpm_2_a",),
        K_SPACING,
        "karras",
        second_order=True,
        uses_ensd=True,
        k_function="dpm_2_ancestral",
    ),
    SamplerSpec(
        "DPM fast", None, ("k_dpm_fast",), uses_ensd=True, uses_eta="ancestral", k_function="dpm_fast"
    ),
    SamplerSpec(
        "DPM adaptive", None, ("k_dpm_ad",), uses_ensd=True, uses_eta="ancestral", k_function="dpm_adaptive"
    ),
    SamplerSpec(
        "Restart", None, ("restart",), default_schedule="karras", second_order=True, k_function="restart"
    ),
    SamplerSpec(
        "DDIM",
        DDIMScheduler,
        ("ddim",),
        {"timestep_spacing": "leading"},
        schedules=False,
        uses_eta="ddim",
        timestep_sampler=True,
    ),
    SamplerSpec(
        "DDIM CFG++",
        None,
        ("ddim_cfgpp",),
        schedules=False,
        uses_eta="ddim",
        timestep_sampler=True,
        k_function="ddim_cfgpp",
    ),
    SamplerSpec(
        "PLMS",
        PNDMScheduler,
        ("plms",),
        {"timestep_spacing": "leading", "skip_prk_steps": True},
        schedules=False,
        timestep_sampler=True,
    ),
    SamplerSpec(  # A1111's UniPC (sampling/unipc.py); the schedule type is ignored, as in A1111
        "UniPC",
        None,
        ("unipc",),
        {},
        schedules=False,
        timestep_sampler=True,
        k_function="unipc",
    ),
    SamplerSpec(
        "LCM", LCMHostNoiseScheduler, ("k_lcm", "lcm"), {"timestep_spacing": "leading"}, schedules=False
    ),
)

_SAMPLER_LOOKUP = {key.lower(): s for s in SAMPLERS for key in (s.name, *s.aliases)}
_SCHEDULE_LOOKUP = {key.lower(): t for t in SCHEDULE_TYPES for key in (t.label, t.name, *t.aliases)}


def find_schedule_type(name: str | None) -> ScheduleType:
    """A schedule type by label, name or alias (case-insensitive); None/"" means Automatic."""
    if not name:
        return SCHEDULE_TYPES[0]
    found = _SCHEDULE_LOOKUP.get(name.strip().lower())
    if found is None:
        labels = ", ".join(t.label for t in SCHEDULE_TYPES)
        raise InvalidRequestError(f"Unknown schedule type {name!r}; choose one of: {labels}")
    return found


def find_sampler(name: str | None, schedule: str | None = None) -> tuple[SamplerSpec, ScheduleType]:
    """Resolve an A1111 sampler name (with aliases and old "<sampler> <schedule>" names)."""
    key = (name or SAMPLERS[0].name).strip().lower()
    spec = _SAMPLER_LOOKUP.get(key)
    if spec is None:
        spec, schedule = _split_legacy_name(key, schedule)
    return spec, find_schedule_type(schedule)


def _split_legacy_name(key: str, schedule: str | None) -> tuple[SamplerSpec, str | None]:
    for suffix, stype in sorted(_SCHEDULE_LOOKUP.items(), key=lambda kv: -len(kv[0])):
        base = key.removesuffix(" " + suffix)
        if base != key and base in _SAMPLER_LOOKUP:
            keep = schedule and find_schedule_type(schedule).name != "automatic"
            return _SAMPLER_LOOKUP[base], schedule if keep else stype.label
    names = ", ".join(s.name for s in SAMPLERS)
    raise InvalidRequestError(f"Sampler not found: {key!r}; choose one of: {names}")


def resolved_schedule(spec: SamplerSpec, schedule: ScheduleType) -> ScheduleType:
    """The schedule actually used: Automatic becomes the sampler's default; DDIM/PLMS/LCM use none."""
    if not spec.schedules:
        return SCHEDULE_TYPES[0]
    if schedule.name == "automatic":
        return find_schedule_type(spec.default_schedule)
    if schedule.config is None and spec.k_function is None:
        return SCHEDULE_TYPES[0]  # UniPC: a schedule diffusers lacks is ignored, as A1111 ignores all
    return schedule


def runs_k_diffusion(spec: SamplerSpec, schedule: ScheduleType) -> bool:
    """Sumi's k-diffusion implementation runs the sampler: diffusers has no such scheduler, or no such
    schedule type."""
    return spec.k_function is not None and (spec.scheduler_class is None or schedule.config is None)


class SteppingScheduler(Protocol):
    """What the sampling loop calls on a diffusers scheduler (SchedulerMixin itself declares none of it)."""

    timesteps: torch.Tensor
    init_noise_sigma: float | torch.Tensor

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None: ...

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor: ...

    def step(
        self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor, **kwargs: Any
    ) -> Any: ...


@dataclass
class BuiltScheduler:
    """A job's sampler: a diffusers scheduler, or a `KSampler` (the loop runs `k_loop.sample_k`)."""

    scheduler: SchedulerMixin | KSampler
    spec: SamplerSpec
    schedule: ScheduleType
    step_kwargs: dict[str, Any]
    tuning: SamplerTuning = field(default_factory=SamplerTuning)  # the sampler parameters that apply

    @property
    def stepping(self) -> SteppingScheduler:
        """The scheduler as the loop drives it (every scheduler in SAMPLERS has these methods)."""
        return cast(SteppingScheduler, self.scheduler)


def build_scheduler(
    sampler: str | None,
    schedule: str | None,
    model_config: dict[str, Any],
    *,
    eta_ancestral: float = 1.0,
    eta_ddim: float = 0.0,
    seed: int = 0,
    seeds: Sequence[int] = (),
    is_sdxl: bool = False,
    tuning: SamplerTuning | None = None,
) -> BuiltScheduler:
    """A fresh scheduler for one job. `model_config` holds the model's betas and prediction type;
    `seeds` (the batch's image seeds) seed the Brownian noise of the SDE samplers Sumi runs itself,
    `is_sdxl` picks the Align Your Steps table. `tuning` (A1111's sampler parameters): those that
    apply to the sampler; churn, a changed schedule or the SGM multiplier run it in Sumi's own loop."""
    spec, requested = find_sampler(sampler, schedule)
    stype = resolved_schedule(spec, requested)
    tuned = effective(tuning or SamplerTuning(), spec.k_function, spec.timestep_sampler)
    k_wanted = spec.k_function is not None and tuned.needs_k_diffusion(stype.name)
    if runs_k_diffusion(spec, stype) or k_wanted:
        eta = eta_ddim if spec.uses_eta == "ddim" else eta_ancestral
        run = _k_sampler(spec, stype, model_config, eta, tuple(seeds) or (seed,), is_sdxl, tuned)
        return BuiltScheduler(run, spec, stype, {}, tuned)
    if spec.scheduler_class is None:
        raise InvalidRequestError(f"{spec.name} cannot run with schedule type {stype.label}")
    config = {**model_config, **spec.config, **(stype.config or {})}
    if spec.uses_eta == "ancestral":
        config["eta"] = eta_ancestral
    if spec.scheduler_class is DPMSolverSDEScheduler:
        config["noise_sampler_seed"] = seed
    scheduler = _from_config(spec.scheduler_class, _supported(spec.scheduler_class, config))
    step_kwargs = {"eta": eta_ddim} if spec.uses_eta == "ddim" else {}
    return BuiltScheduler(scheduler, spec, stype, step_kwargs, tuned)


def _k_sampler(
    spec: SamplerSpec,
    stype: ScheduleType,
    model_config: dict[str, Any],
    eta: float,
    seeds: tuple[int, ...],
    is_sdxl: bool,
    tuning: SamplerTuning,
) -> KSampler:
    assert spec.k_function is not None
    options: dict[str, Any] = {"eta": eta}
    if spec.solver_type is not None:
        options["solver_type"] = spec.solver_type
    if tuning.churn.active:
        options.update(tuning.churn.options())
    if spec.k_function == "unipc":
        options.update(tuning.unipc.options())
    try:
        model = ModelSigmas.from_config(model_config)
    except ValueError as error:
        raise InvalidRequestError(f"{spec.name}: {error}") from error
    return KSampler(
        spec.k_function,
        model,
        stype.name,
        model_config.get("prediction_type", "epsilon"),
        options,
        brownian=spec.brownian_noise,
        discard_penultimate=spec.discard_next_to_last_sigma,
        seeds=seeds,
        is_sdxl=is_sdxl,
        tuning=tuning.schedule,
        sgm_noise_multiplier=tuning.sgm_noise_multiplier,
        step_state=tuning.step_state,
    )


def call_sigma(scheduler: Any, timestep: torch.Tensor | float) -> float:
    """The noise level (k-diffusion sigma) of the model call the scheduler is at: the sigma its
    `scale_model_input` used (the midpoint sigma on the second evaluation of KDPM2 and DPM++ SDE), or
    for schedulers without sigmas (DDIM, PLMS, LCM) the timestep's, sqrt((1 - alpha_bar) / alpha_bar).
    Call it after `scale_model_input` of that call. The model input is then a * x0 + sqrt(1 - a^2) * eps
    with a = 1 / sqrt(1 + sigma^2) for every scheduler. A `KSampler` knows the sigma of its call."""
    if isinstance(scheduler, KSampler):
        if scheduler.current_sigma is not None:
            return scheduler.current_sigma
        scheduler = scheduler.model
    sigmas = getattr(scheduler, "sigmas", None)
    index = getattr(scheduler, "step_index", None)
    if index is None:
        index = getattr(scheduler, "begin_index", None)
    if sigmas is not None and index is not None and index < len(sigmas):
        if not getattr(scheduler, "state_in_first_order", True):
            interpol = getattr(scheduler, "sigmas_interpol", None)
            if interpol is not None:
                return float(interpol[index])
            mid = getattr(scheduler, "mid_point_sigma", None)
            if mid is not None:
                return float(mid)
        return float(sigmas[index])
    alphas = scheduler.alphas_cumprod
    a = float(alphas[min(max(round(float(timestep)), 0), len(alphas) - 1)])
    return ((1 - a) / a) ** 0.5


def _from_config(cls: type[SchedulerMixin], config: dict[str, Any]) -> SchedulerMixin:
    """`cls.from_config(config)`: every diffusers scheduler is also a ConfigMixin (SchedulerMixin does
    not say so), and without `return_unused_kwargs` it returns the scheduler alone, not a tuple."""
    return cast(SchedulerMixin, cast(type[ConfigMixin], cls).from_config(config))


def _supported(cls: type[SchedulerMixin], config: dict[str, Any]) -> dict[str, Any]:
    """Drop schedule flags a scheduler class does not know (diffusers would silently ignore them)."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in SIGMA_FLAGS if config.get(k) and k not in params and not takes_kwargs]
    if unknown:
        raise InvalidRequestError(f"{cls.__name__} does not support {', '.join(unknown)}")
    return config
