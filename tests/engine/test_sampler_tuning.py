"""A1111's sampler parameters in the engine: churn (k-diffusion's own functions as the reference), the
schedule's sigma range and rho, the SGM noise multiplier, img2img's extra noise, and CFG without the
negative prompt (NGMS, skip early CFG)."""

from __future__ import annotations

import math

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import (
    Extension,
    ExtensionManager,
    HookPoint,
    LoopContext,
    UNetBatch,
    hook,
)
from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.sampling import k_samplers, loop
from modules.sumi.engine.sampling.denoiser import guided
from modules.sumi.engine.sampling.k_loop import KSampler
from modules.sumi.engine.sampling.loop_types import PartialStart
from modules.sumi.engine.sampling.samplers import build_scheduler
from modules.sumi.engine.sampling.schedules import ModelSigmas, karras_sigmas
from modules.sumi.engine.sampling.tuning import (
    Churn,
    SamplerTuning,
    ScheduleTuning,
    UncondSkipping,
    UniPCTuning,
)
from tests.engine.k_reference import Gaussian, k_sampling
from tests.engine.test_k_samplers import Draws, Recorder, _close, _start
from tests.engine.test_prompt_schedule import _call, _FakeUNet, _row

CONFIG = scheduler_config("epsilon")
MODEL = ModelSigmas.from_config(CONFIG)
DATA = Gaussian()
CHURN = {"s_churn": 3.0, "s_tmin": 0.3, "s_tmax": 6.0, "s_noise": 1.003}


class _TorchWithDraws:
    """k-diffusion's `torch` with `randn_like` drawing from `Draws`: A1111's TorchHijack, which hands
    k-diffusion the image generators' noise."""

    def __init__(self, draws: Draws) -> None:
        self.draws = draws

    def __getattr__(self, name: str):
        return self.draws if name == "randn_like" else getattr(torch, name)


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_2"])
def test_churn_equals_k_diffusion_drawing_noise_at_every_step(name, monkeypatch):
    sigmas = karras_sigmas(10, MODEL.sigma_min, MODEL.sigma_max)
    x = _start() * sigmas[0]
    reference_module = k_sampling()
    monkeypatch.setattr(reference_module, "torch", _TorchWithDraws(Draws()))
    reference = getattr(reference_module, f"sample_{name}")(
        DATA.denoised, x.clone(), sigmas, disable=True, **CHURN
    )
    draws = Draws()
    ours = getattr(k_samplers, name)(DATA.denoised, x.clone(), sigmas, Recorder(), draws, **CHURN)
    _close(ours, reference)
    assert draws.calls == 10  # one per step, also where sigma is outside [tmin, tmax] (k-diffusion's order)
    plain = getattr(k_samplers, name)(DATA.denoised, x.clone(), sigmas, Recorder(), Draws())
    assert (ours - plain).abs().max() > 0.01


def test_without_churn_nothing_is_drawn():
    draws = Draws()
    sigmas = karras_sigmas(6, MODEL.sigma_min, MODEL.sigma_max)
    k_samplers.euler(DATA.denoised, _start() * sigmas[0], sigmas, Recorder(), draws)
    assert draws.calls == 0


def test_churn_takes_sumis_k_diffusion_loop_only_for_euler_heun_and_dpm2():
    churn = SamplerTuning(churn=Churn.from_settings(1.0, 0.0, 0.0, 1.0))
    assert churn.churn.tmax == math.inf  # A1111's 0 means no upper bound
    for sampler in ("Euler", "Heun", "DPM2"):
        built = build_scheduler(sampler, "Automatic", CONFIG, tuning=churn)
        assert isinstance(built.scheduler, KSampler) and built.scheduler.options["s_churn"] == 1.0
        assert built.tuning.churn.active
    for sampler in ("Euler a", "DPM++ 2M", "DDIM", "UniPC"):
        built = build_scheduler(sampler, "Automatic", CONFIG, tuning=churn)
        assert not built.tuning.churn.active  # A1111 gives churn to Euler, Heun and DPM2 only
    assert not isinstance(build_scheduler("Euler a", "Automatic", CONFIG, tuning=churn).scheduler, KSampler)


def _sigmas(sampler: str, schedule: str, tuning: ScheduleTuning, steps: int = 10) -> torch.Tensor:
    built = build_scheduler(sampler, schedule, CONFIG, tuning=SamplerTuning(schedule=tuning))
    assert isinstance(built.scheduler, KSampler)
    return built.scheduler.sigmas(steps)


def test_schedule_sigma_range_and_rho_are_k_diffusions_with_the_settings():
    reference = k_sampling()
    karras = _sigmas("DPM++ 2M", "Karras", ScheduleTuning(sigma_min=0.1, sigma_max=10.0, rho=5.0))
    _close(karras, reference.get_sigmas_karras(10, 0.1, 10.0, rho=5.0))
    poly = _sigmas("Euler", "Polyexponential", ScheduleTuning(sigma_max=8.0, rho=2.0))
    _close(poly, reference.get_sigmas_polyexponential(10, MODEL.sigma_min, 8.0, rho=2.0))
    exponential = _sigmas("Euler", "Exponential", ScheduleTuning(sigma_min=0.2, rho=3.0))  # no rho there
    _close(exponential, reference.get_sigmas_exponential(10, 0.2, MODEL.sigma_max))


def test_always_discarding_the_penultimate_sigma_builds_one_step_more_and_drops_it():
    plain = _sigmas("Euler", "Karras", ScheduleTuning(rho=7.0))  # rho 7 is Karras' own: no change
    assert torch.equal(plain, karras_sigmas(10, MODEL.sigma_min, MODEL.sigma_max))
    discarded = _sigmas("Euler", "Karras", ScheduleTuning(always_discard_penultimate=True))
    full = karras_sigmas(11, MODEL.sigma_min, MODEL.sigma_max)
    assert torch.equal(discarded, torch.cat([full[:-2], full[-1:]])) and len(discarded) == 11


def test_schedule_settings_leave_timestep_samplers_on_diffusers():
    built = build_scheduler(
        "DDIM", "Automatic", CONFIG, tuning=SamplerTuning(schedule=ScheduleTuning(rho=3.0))
    )
    assert not isinstance(built.scheduler, KSampler)
    assert built.tuning.schedule == ScheduleTuning()


class _FirstLatents(Extension):
    def __init__(self) -> None:
        super().__init__()
        self.latents: torch.Tensor | None = None

    @hook(HookPoint.PRE_LOOP)
    def keep(self, context: LoopContext) -> None:
        self.latents = context.latents.clone()


def _start_latents(sampler: str, tuning: SamplerTuning, noise: torch.Tensor, start=None) -> torch.Tensor:
    built = build_scheduler(sampler, "Automatic", CONFIG, tuning=tuning)
    first = _FirstLatents()
    loop.sample(
        lambda x, t, i: torch.zeros_like(x),
        built,
        noise,
        4,
        progress_bar=False,
        extensions=ExtensionManager([first]),
        start=start,
    )
    assert first.latents is not None
    return first.latents


def test_the_sgm_noise_multiplier_scales_the_starting_noise_by_sqrt_one_plus_sigma_squared():
    noise = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    latents = _start_latents("Euler", SamplerTuning(sgm_noise_multiplier=True), noise)
    torch.testing.assert_close(latents, noise * (1 + MODEL.sigma_max**2) ** 0.5)
    plain = _start_latents("Euler", SamplerTuning(), noise)
    torch.testing.assert_close(plain, noise * MODEL.sigma_max, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DDIM"])
def test_img2img_extra_noise_is_the_same_amount_of_noise_in_every_samplers_scaling(sampler):
    init = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(5))
    extra = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(6))
    seen = []

    def hook_noise(n, x, xi):
        seen.append((n, x, xi))
        return extra

    start = PartialStart(init, noise, 2)
    without = _start_latents(sampler, SamplerTuning(), noise, start)
    start = PartialStart(init, noise, 2, extra_noise=0.5, extra_noise_hook=hook_noise)
    with_extra = _start_latents(sampler, SamplerTuning(extra_noise=0.5), noise, start)
    # the init's factor in the sampler's scaling (1 for sigma scaling, sqrt(alpha_bar) for DDIM-style):
    # the extra noise takes the same factor, so it is the same amount of noise for every sampler
    zeros = torch.zeros_like(noise)
    factor = (_start_latents(sampler, SamplerTuning(), zeros, PartialStart(init, zeros, 2)) / init).mean()
    assert (abs(factor - 1) < 1e-6) == (sampler == "Euler")
    torch.testing.assert_close(with_extra, without + extra * 0.5 * factor, rtol=1e-5, atol=1e-5)
    ((given_noise, given_init, given_noised),) = seen
    assert torch.equal(given_noise, noise) and torch.equal(given_init, init)
    torch.testing.assert_close(given_noised, without, rtol=1e-5, atol=1e-5)


def test_a_skipped_uncond_combines_and_parts_around_the_first_with_scale_one():
    calls = []

    class Counting(_FakeUNet):
        def __call__(self, x, *args, **kwargs):
            calls.append(x.shape[0])
            return super().__call__(x, *args, **kwargs)

    call = _call([[(1.0, _row(2.0)), (-0.5, _row(3.0))], [(0.7, _row(5.0))]], [_row(1.0), _row(0.5)])
    call.skip_uncond = True
    out = guided(Counting(), call)
    assert calls == [3]  # the three prompt rows; no negative prompt rows
    x1, x2 = 1.0, 2.0  # A1111: the first part stands in for the uncond, CFG scale 1
    image1 = 2 * x1 + (1.0 * (2 * x1 - 2 * x1) - 0.5 * (3 * x1 - 2 * x1))
    image2 = 5 * x2 + 0.7 * (5 * x2 - 5 * x2)
    assert torch.allclose(out[0], torch.full((4, 2, 2), image1))
    assert torch.allclose(out[1], torch.full((4, 2, 2), image2))


@pytest.mark.parametrize(
    ("skipping", "expected"),
    [
        (UncondSkipping(), [False] * 10),
        (UncondSkipping(early=0.25), [True, True, True] + [False] * 7),  # calls 0, 1, 2: call / 10 <= 0.25
        (UncondSkipping(min_sigma=1.0), [False] * 5 + [True, False, True, False, True]),  # odd calls
        (UncondSkipping(min_sigma=1.0, all_steps=True), [False] * 5 + [True] * 5),
    ],
)
def test_which_calls_skip_the_negative_prompt(skipping, expected):
    sigmas = [14.6, 8.0, 5.0, 3.0, 1.5, 0.9, 0.6, 0.4, 0.2, 0.05]
    assert [skipping.reason(i, 10, s) is not None for i, s in enumerate(sigmas)] == expected


@pytest.fixture(scope="module")
def model(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


class _BatchSizes(Extension):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []

    @hook(HookPoint.UNET_FORWARD)
    def count(self, batch: UNetBatch) -> None:
        self.rows.append(batch.x.shape[0])


def _job(model, tuning: SamplerTuning, sampler: str = "Euler") -> tuple[engine.BatchResult, list[int]]:
    sizes = _BatchSizes()
    request = engine.BatchRequest(
        prompts=["a cat"],
        negative_prompts=["a dog"],
        seeds=[3],
        width=32,
        height=32,
        steps=6,
        sampler=sampler,
        tuning=tuning,
    )
    return engine.generate(model, request, extensions=[sizes], progress_bar=False), sizes.rows


def test_ngms_runs_every_other_late_call_without_the_negative_prompt_and_the_job_says_so(model):
    plain, plain_rows = _job(model, SamplerTuning())
    assert plain_rows == [2] * 6 and plain.uncond_skipped == frozenset()
    ngms, rows = _job(model, SamplerTuning(skipping=UncondSkipping(min_sigma=100.0)))
    assert rows == [2, 1] * 3 and ngms.uncond_skipped == {"ngms"}
    assert ngms.images[0].tobytes() != plain.images[0].tobytes()
    early, rows = _job(model, SamplerTuning(skipping=UncondSkipping(early=0.5)))
    assert rows == [1, 1, 1, 1, 2, 2] and early.uncond_skipped == {"early"}  # calls 0..3 of 6: <= 0.5


def test_churn_in_a_job_changes_the_image_reproducibly(model):
    churn = SamplerTuning(churn=Churn(churn=2.0))
    first, _ = _job(model, churn)
    again, _ = _job(model, churn)
    plain, _ = _job(model, SamplerTuning())
    assert first.images[0].tobytes() == again.images[0].tobytes()
    assert first.images[0].tobytes() != plain.images[0].tobytes()
    assert first.tuning.churn.churn == 2.0


def test_unipc_settings_reach_sumis_unipc():
    tuning = SamplerTuning(unipc=UniPCTuning("bh2", "logSNR", order=2, lower_order_final=False))
    run = build_scheduler("UniPC", "Karras", CONFIG, tuning=tuning).scheduler
    assert isinstance(run, KSampler) and run.function == "unipc"
    assert run.options == {
        "eta": 1.0,
        "variant": "bh2",
        "skip_type": "logSNR",
        "order": 2,
        "lower_order_final": False,
    }
