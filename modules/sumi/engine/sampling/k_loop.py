"""Running Sumi's own k-diffusion-style samplers inside the sampling loop.

`KSampler` is what `build_scheduler` returns for a sampler (or schedule type) diffusers does not have:
the sampler function, the model's sigmas, the schedule and the options. `sample_k` gives it what the
diffusers path gives a scheduler: the engine's loop hooks (PRE_LOOP, PRE_STEP/POST_STEP around each
sampler step, POST_LOOP), progress callbacks with the latents and x0 estimate, interrupt/skip between
steps, img2img's partial start, and per-image noise (each image's generator, or A1111's per-seed
Brownian trees for the SDE samplers). The model is called as the denoiser the loop is given:
`denoise(scaled input, timestep, model call index)` returning the UNet's prediction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from modules.sumi.engine.extensions import ExtensionManager, HookPoint, LoopContext, StepContext
from modules.sumi.engine.sampling import cfgpp, dpm_solver, k_samplers, restart, unipc
from modules.sumi.engine.sampling.ancestral import predicted_original
from modules.sumi.engine.sampling.loop_types import (
    PartialStart,
    Pause,
    SamplingControl,
    StepInfo,
    add_extra_noise,
)
from modules.sumi.engine.sampling.noise import Generator
from modules.sumi.engine.sampling.noise_sources import BrownianNoise, GeneratorNoise, NoiseSource
from modules.sumi.engine.sampling.schedules import ModelSigmas, ddim_timesteps, schedule_sigmas
from modules.sumi.engine.sampling.suspendable import OutwardCall, SuspendableRun
from modules.sumi.engine.sampling.tuning import ScheduleTuning, schedule_rho

FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": k_samplers.euler,
    "euler_ancestral": k_samplers.euler_ancestral,
    "heun": k_samplers.heun,
    "dpm_2": k_samplers.dpm_2,
    "dpm_2_ancestral": k_samplers.dpm_2_ancestral,
    "lms": k_samplers.lms,
    "dpmpp_2s_ancestral": k_samplers.dpmpp_2s_ancestral,
    "dpmpp_sde": k_samplers.dpmpp_sde,
    "dpmpp_2m": k_samplers.dpmpp_2m,
    "dpmpp_2m_sde": k_samplers.dpmpp_2m_sde,
    "dpmpp_3m_sde": k_samplers.dpmpp_3m_sde,
    "dpm_fast": dpm_solver.dpm_fast,
    "dpm_adaptive": dpm_solver.dpm_adaptive,
    "restart": restart.restart,
    "ddim_cfgpp": cfgpp.ddim_cfgpp,
    "unipc": unipc.unipc,
}
TIMESTEP_FUNCTIONS = ("ddim_cfgpp", "unipc")  # run on DDIM timesteps in variance-preserving latents
BOUNDS_FUNCTIONS = ("dpm_fast", "dpm_adaptive")  # take (sigma_min, sigma_max, n), not the sigmas


@dataclass
class KSampler:
    """One job's k-diffusion-style sampler. `current_sigma` is the noise level of the model call in
    progress (the denoiser's `sigma_of` reads it through `samplers.call_sigma`)."""

    function: str
    model: ModelSigmas
    schedule: str  # a ScheduleType name; "automatic" is k-diffusion's default (uniform in timesteps)
    prediction_type: str = "epsilon"
    options: dict[str, Any] = field(default_factory=dict)  # eta, solver_type, ...
    brownian: bool = False
    discard_penultimate: bool = False
    seeds: tuple[int, ...] = ()
    is_sdxl: bool = False
    current_sigma: float | None = None
    tuning: ScheduleTuning = field(default_factory=ScheduleTuning)
    sgm_noise_multiplier: bool = False  # start from noise * sqrt(1 + sigma^2), not noise * sigma
    step_state: Callable[[dict[str, Any]], None] | None = None  # SamplerTuning.step_state

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.model.alphas_cumprod

    @property
    def timestep_sampler(self) -> bool:
        return self.function in TIMESTEP_FUNCTIONS

    def sigmas(self, steps: int) -> torch.Tensor:
        t = self.tuning
        return schedule_sigmas(
            self.schedule,
            steps,
            self.model,
            discard_penultimate=self.discard_penultimate or t.always_discard_penultimate,
            is_sdxl=self.is_sdxl,
            rho=schedule_rho(self.schedule, t.rho),
            sigma_min=t.sigma_min or None,
            sigma_max=t.sigma_max or None,
            beta=(t.beta_alpha, t.beta_beta),
        )

    def noise_scale(self, sigma: torch.Tensor) -> torch.Tensor:
        """What the starting noise is multiplied by at noise level `sigma`."""
        return (1 + sigma**2) ** 0.5 if self.sgm_noise_multiplier else sigma


class _Stopped(Exception):
    def __init__(self, latents: torch.Tensor) -> None:
        super().__init__("sampling stopped")
        self.latents = latents


class _Reporter:
    """The `Steps` a sampler reports to: hooks, progress, previews and stopping."""

    def __init__(
        self,
        ext: ExtensionManager,
        callback: Callable[[StepInfo], None] | None,
        control: SamplingControl | None,
        out_dtype: torch.dtype,
        progress_bar: bool,
    ) -> None:
        self.ext, self.callback, self.control = ext, callback, control
        self.out_dtype = out_dtype
        self.progress_bar = progress_bar
        self.total = 0
        self.index = 0
        self.timestep = torch.tensor(0.0)  # of the step's first model call
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None
        self.bar: Any = None
        self.step_state: Callable[[dict[str, Any]], None] | None = None  # KSampler.step_state
        self.state_step = -1  # the last step it was called for

    def state(self, x: torch.Tensor, sigma: Any, sigma_hat: Any, denoised: torch.Tensor) -> None:
        """k-diffusion's per-step callback (A1111's `callback_state`), once per step: its edits to `x`
        and `denoised` (in place) carry on into the step."""
        if self.step_state is None or self.index == self.state_step:
            return
        self.state_step = self.index
        level = torch.as_tensor(sigma)
        hat = torch.as_tensor(sigma_hat)
        self.step_state({"x": x, "i": self.index, "sigma": level, "sigma_hat": hat, "denoised": denoised})

    def model_call(self, timestep: torch.Tensor, first_of_step: bool) -> None:
        if first_of_step:
            self.timestep = timestep

    def start(self, x: torch.Tensor, total: int) -> torch.Tensor:
        self.total = max(int(total), 1)
        self.bar = tqdm(total=self.total, disable=not self.progress_bar, desc="Sampling", leave=False)
        self._check_stop(x)
        return self._step_hook(HookPoint.PRE_STEP, StepContext(0, self.total, self.timestep, x))

    def done(self, x: torch.Tensor, denoised: torch.Tensor, *, last: bool) -> torch.Tensor:
        step = min(self.index, self.total - 1)
        x = self._step_hook(HookPoint.POST_STEP, StepContext(step, self.total, self.timestep, x, denoised))
        self.index += 1
        self.last = (x, denoised)
        if self.bar is not None and self.index <= self.total:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(_info(step, self.total, x.to(self.out_dtype), denoised.to(self.out_dtype)))
        self._check_stop(x)
        if not last:
            next_step = min(self.index, self.total - 1)
            x = self._step_hook(HookPoint.PRE_STEP, StepContext(next_step, self.total, self.timestep, x))
        return x

    def finish(self, completed: bool) -> None:
        """Progress at 100% when a sampler completed in fewer steps than it planned (DPM adaptive)."""
        if self.bar is not None:
            self.bar.close()
        if completed and self.callback is not None and self.last is not None and self.index < self.total:
            x, denoised = self.last
            self.callback(
                _info(self.total - 1, self.total, x.to(self.out_dtype), denoised.to(self.out_dtype))
            )

    def _check_stop(self, x: torch.Tensor) -> None:
        if self.control is not None and self.control.should_stop:
            raise _Stopped(x)

    def _step_hook(self, point: HookPoint, context: StepContext) -> torch.Tensor:
        if self.ext.has(point):
            self.ext.run(point, context)
        return context.latents


def _info(step: int, total: int, latents: torch.Tensor, denoised: torch.Tensor | None) -> StepInfo:
    return StepInfo(step, total, latents, denoised)


class _Denoiser:
    """The loop's denoiser as k-diffusion's model(x, sigma) -> x0, counting model calls."""

    def __init__(self, denoise: Callable, run: KSampler, dtype: torch.dtype, reporter: _Reporter) -> None:
        self.denoise, self.run, self.dtype, self.reporter = denoise, run, dtype, reporter
        self.device: torch.device | None = None  # the model's, when it is not the latents' (after a switch)
        self._call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = self.call_model
        self.calls = 0
        self.seen_step = -1
        self.guided = False  # CFG++: the denoiser keeps its unconditional prediction (`_use_cfgpp`)

    def call_model(self, model_input: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """One model call (its progress and hooks included); `_call` runs it, or hands it to the thread
        serving a suspendable run."""
        self.reporter.model_call(timestep, self.reporter.index != self.seen_step)
        self.seen_step = self.reporter.index
        device = model_input.device
        on = self.device or device
        out = self.denoise(model_input.to(device=on, dtype=self.dtype), timestep, self.calls)
        self.calls += 1
        return out.to(device=device, dtype=torch.float32)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        s = float(sigma)
        self.run.current_sigma = s
        t = self.run.model.sigma_to_t(torch.tensor(s))  # on the host, as the schedule
        out = self._call(x / (s**2 + 1) ** 0.5, t)
        denoised = predicted_original(out, x, s, self.run.prediction_type)
        if (
            self.reporter.step_state is not None
            and self.run.function not in k_samplers.STATE_AFTER_DERIVATIVE
        ):
            level = torch.tensor(s)  # (the samplers in STATE_AFTER_DERIVATIVE report it themselves)
            self.reporter.state(x, level, level, denoised)
        return denoised

    def eps(self, x: torch.Tensor, timestep: int) -> tuple[torch.Tensor, torch.Tensor]:
        """CFG++: guided and unconditional noise predictions at a training timestep (x is VP)."""
        a = float(self.run.alphas_cumprod[timestep])
        self.run.current_sigma = ((1 - a) / a) ** 0.5
        out = self._call(x, torch.tensor(float(timestep)))
        # a denoiser without guidance (no `keep_uncond`) is its own unconditional prediction
        uncond = getattr(self.denoise, "last_uncond", None) if self.guided else out
        if uncond is None:
            raise RuntimeError("the CFG denoiser kept no unconditional prediction for DDIM CFG++")
        return self._to_eps(out, x, a), self._to_eps(uncond.to(torch.float32), x, a)

    def eps_at(self, x: torch.Tensor, timestep: float) -> torch.Tensor:
        """The guided noise prediction at a training timestep that may lie between two (UniPC); a
        v-prediction is turned into noise with the alpha of the timestep below, as A1111."""
        a = float(self.run.alphas_cumprod[int(timestep)])
        self.run.current_sigma = ((1 - a) / a) ** 0.5
        out = self._call(x, torch.tensor(float(timestep)))
        return self._to_eps(out, x, a)

    def _to_eps(self, out: torch.Tensor, x: torch.Tensor, a: float) -> torch.Tensor:
        if self.run.prediction_type == "v_prediction":
            return a**0.5 * out + (1 - a) ** 0.5 * x
        return out


def _noise_source(
    run: KSampler, x: torch.Tensor, sigmas: torch.Tensor, generators: Sequence[Generator] | None
) -> NoiseSource:
    if run.brownian:
        seeds = list(run.seeds)
        if len(seeds) != x.shape[0]:  # one seed given: the batch's consecutive seeds, as A1111 makes them
            seeds = [(seeds[0] if seeds else 0) + i for i in range(x.shape[0])]
        positive = sigmas[sigmas > 0]
        return BrownianNoise(x, float(positive.min()), float(sigmas.max()), seeds)
    if generators is None:
        generators = [torch.Generator().manual_seed(int(s)) for s in run.seeds] or [
            torch.Generator().manual_seed(0) for _ in range(x.shape[0])
        ]
    return GeneratorNoise(x, generators)


def sample_k(
    denoise: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    run: KSampler,
    noise: torch.Tensor,
    steps: int,
    *,
    generators: Sequence[Generator] | None = None,
    callback: Callable[[StepInfo], None] | None = None,
    control: SamplingControl | None = None,
    progress_bar: bool = True,
    extensions: ExtensionManager | None = None,
    start: PartialStart | None = None,
    pause: Pause | None = None,
    resume: Pause | None = None,
) -> torch.Tensor:
    """`loop.sample` for a `KSampler` (same arguments and result). With `pause`, the run may stop at a
    model call (`Pause.suspended` keeps it); with `resume`, it goes on with `denoise`."""
    ext = extensions if extensions is not None else ExtensionManager()
    if resume is not None:
        if not isinstance(resume.suspended, SuspendedK):
            raise ValueError("resume needs a Pause the loop stopped at")
        return resume.suspended.resume(denoise, noise, ext, callback, control)
    out_dtype = noise.dtype
    if run.timestep_sampler:
        schedule = ddim_timesteps(steps)
        levels, first, bounds = _timestep_start(run, schedule, noise, start)
        timesteps = _timestep_calls(run, levels, partial=start is not None)
    else:
        schedule = run.sigmas(steps)
        levels, first, bounds = _sigma_start(run, schedule, noise, start)
        called = levels[:-1]
        timesteps = run.model.sigma_to_t(called) if len(called) else called
    total = len(timesteps)
    context = LoopContext(first, timesteps, total)
    ext.run(HookPoint.PRE_LOOP, context)
    x = context.latents.to(torch.float32)
    stopped = False
    if total > 0:
        reporter = _Reporter(ext, callback, control, out_dtype, progress_bar)
        reporter.step_state = run.step_state
        model = _Denoiser(denoise, run, out_dtype, reporter)
        partial = start is not None
        if pause is not None:
            suspended = SuspendedK(run, model, timesteps, x, levels, bounds, generators, partial)
            if not suspended.serve(pause):
                return suspended.latents.to(out_dtype)
            x, stopped = suspended.result
        else:
            try:
                x = _run(run, model, x, levels, bounds, reporter, generators, partial=partial)
            except _Stopped as stop:
                x, stopped = stop.latents, True
            reporter.finish(completed=not stopped)
    return _end_loop(run, ext, x.to(out_dtype), timesteps, total, stopped)


def _end_loop(
    run: KSampler, ext: ExtensionManager, x: torch.Tensor, timesteps: torch.Tensor, total: int, stopped: bool
) -> torch.Tensor:
    run.current_sigma = None
    context = LoopContext(x, timesteps, total, stopped)
    ext.run(HookPoint.POST_LOOP, context)
    return context.latents


class _RelayedSteps:
    """The reporter as a suspendable run's worker sees it: each report runs on the serving thread."""

    def __init__(self, reporter: _Reporter, relay: SuspendableRun) -> None:
        self.start = relay.outward(reporter.start)
        self.done = relay.outward(reporter.done)


class SuspendedK:
    """A k-loop run that can stop at a model call (the refiner switch, `Pause`) and go on with another
    denoiser (`resume`): the sampler runs as a `SuspendableRun`, its model calls and reports on the
    caller's thread."""

    def __init__(
        self,
        run: KSampler,
        model: _Denoiser,
        timesteps: torch.Tensor,
        x: torch.Tensor,
        levels: torch.Tensor,
        bounds: tuple[float, float],
        generators: Sequence[Generator] | None,
        partial: bool,
    ) -> None:
        self.run, self.model, self.timesteps = run, model, timesteps
        self.latents = x  # the latents when the run stopped (the last step's, or the start's)
        self.result: tuple[torch.Tensor, bool] = (x, False)
        self.relay = SuspendableRun(
            lambda: _run(run, model, x, levels, bounds, steps, generators, partial=partial)
        )
        steps = _RelayedSteps(model.reporter, self.relay)
        model._call = self.relay.outward(model.call_model, "model")

    def serve(self, pause: Pause | None) -> bool:
        """Run until the sampler finishes (True; `result` holds the latents and whether it was stopped)
        or until `pause.before` is true for a model call (False; `pause` records where)."""
        reporter = self.model.reporter

        def stop_before(call: OutwardCall) -> bool:
            if pause is None or call.tag != "model":
                return False
            return bool(pause.before(reporter.index, reporter.total, call.args[1]))

        try:
            x = self.relay.serve(stop_before)
        except _Stopped as stop:
            self.result = (stop.latents, True)
        else:
            if pause is not None and not self.relay.finished:
                if reporter.last is not None:
                    self.latents = reporter.last[0]
                pause.index, pause.timesteps, pause.suspended = reporter.index, self.timesteps, self
                return False
            self.result = (x, False)
        reporter.finish(completed=not self.result[1])
        return True

    def resume(
        self,
        denoise: Callable,
        noise: torch.Tensor,
        ext: ExtensionManager,
        callback: Callable[[StepInfo], None] | None,
        control: SamplingControl | None,
    ) -> torch.Tensor:
        """Go on from the stopped model call with `denoise` (`noise`: the latents `sample_k` returned at
        the pause, moved to the new model's device and dtype); the loop's end as `sample_k`'s."""
        model, reporter = self.model, self.model.reporter
        model.denoise, model.dtype, model.device = denoise, noise.dtype, noise.device
        if model.guided:
            _use_cfgpp(denoise)
        reporter.ext, reporter.callback, reporter.control, reporter.out_dtype = (
            ext,
            callback,
            control,
            noise.dtype,
        )
        self.serve(None)
        x, stopped = self.result
        return _end_loop(
            self.run,
            ext,
            x.to(device=noise.device, dtype=noise.dtype),
            self.timesteps,
            reporter.total,
            stopped,
        )

    def close(self) -> None:
        self.relay.close()


def _run(
    run: KSampler,
    model: _Denoiser,
    x: torch.Tensor,
    levels: torch.Tensor,
    bounds: tuple[float, float],
    reporter: k_samplers.Steps,
    generators: Sequence[Generator] | None,
    *,
    partial: bool = False,
) -> torch.Tensor:
    function = FUNCTIONS[run.function]
    accepted = inspect.signature(function).parameters
    options = {k: v for k, v in run.options.items() if k in accepted}
    if "is_img2img" in accepted:
        options["is_img2img"] = partial
    if run.function == "unipc":
        return function(model.eps_at, x, levels, run.alphas_cumprod, reporter, None, **options)
    if run.timestep_sampler:
        model.guided = _use_cfgpp(model.denoise)
        noise = _noise_source(run, x, torch.ones(1), generators)
        return function(model.eps, x, levels, run.alphas_cumprod, reporter, noise, **options)
    noise = _noise_source(run, x, levels, generators)
    if run.function in BOUNDS_FUNCTIONS:
        return function(model, x, bounds[0], bounds[1], len(levels) - 1, reporter, noise, **options)
    return function(model, x, levels, reporter, noise, **options)


def _timestep_calls(run: KSampler, levels: torch.Tensor, *, partial: bool) -> torch.Tensor:
    """The timesteps a timestep sampler calls the model at, highest first: DDIM's are its levels but the
    lowest; UniPC's lie on its own time grid (one per level)."""
    if run.function == "unipc":
        skip_type = str(run.options.get("skip_type", "time_uniform"))
        return unipc.model_timesteps(levels, run.alphas_cumprod, partial, skip_type)
    return levels[1:].flip(0).to(torch.float32)


def _use_cfgpp(denoise: Any) -> bool:
    """Ask a CFG denoiser (`denoiser.CFGDenoiser`) for CFG++: guidance scale / 12.5 and its unconditional
    prediction kept. False for a denoiser without guidance."""
    if not hasattr(denoise, "cfg_multiplier") or not hasattr(denoise, "keep_uncond"):
        return False
    denoise.cfg_multiplier = 1 / cfgpp.CFG_DIVISOR
    denoise.keep_uncond = True
    return True


def _sigma_start(
    run: KSampler, sigmas: torch.Tensor, noise: torch.Tensor, start: PartialStart | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """(sigmas to run, starting latents, DPM fast/adaptive's (sigma_min, sigma_max)) as A1111's
    `sample` / `sample_img2img`: txt2img starts from noise * sigma_max with the model's sigma range,
    img2img from init + noise * sigma at the first step run, with the range of the steps run."""
    steps = len(sigmas) - 1
    if start is None:
        first = noise.to(torch.float32) * run.noise_scale(sigmas[0])
        return sigmas, first, (run.model.sigma_min, run.model.sigma_max)
    run_steps = min(max(start.run_steps, 0), steps)
    if run_steps == 0:
        return sigmas[-1:], start.init, (run.model.sigma_min, run.model.sigma_max)
    sched = sigmas[steps - run_steps :]
    noised_at = max(steps - run_steps - start.noise_back, 0)
    init, start_noise = start.init.to(torch.float32), start.noise.to(torch.float32)
    first = init + start_noise * run.noise_scale(sigmas[noised_at])
    first = add_extra_noise(start, init, first, 1.0)
    return sched, first, (float(sched[-2]), float(sched[0]))


def _timestep_start(
    run: KSampler, timesteps: torch.Tensor, noise: torch.Tensor, start: PartialStart | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float]]:
    """(ascending timesteps to run, starting VP latents) as A1111's timestep samplers: txt2img starts
    from the noise itself, img2img runs the first `run_steps` timesteps from the init noised to the
    timestep `noise_back` above the last of them."""
    unused = (0.0, 0.0)
    if start is None:
        return timesteps, noise.to(torch.float32), unused
    run_steps = min(max(start.run_steps, 0), len(timesteps))
    if run_steps == 0:
        return timesteps[:0], start.init, unused
    level = int(timesteps[min(run_steps - 1 + start.noise_back, len(timesteps) - 1)])
    a = run.alphas_cumprod[level].to(noise.device)
    init = start.init.to(torch.float32)
    first = init * a.sqrt() + start.noise.to(torch.float32) * (1 - a).sqrt()
    return timesteps[:run_steps], add_extra_noise(start, init, first, a.sqrt()), unused
