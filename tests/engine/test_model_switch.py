"""The refiner's model switch in the engine: the rest of the same schedule (scheduler state, noise
stream) on another model. Switching to the same model is no switch; switching to another model equals
one uninterrupted loop whose denoiser changes model at that step; A1111's completed-ratio rule picks
the step."""

from __future__ import annotations

import threading

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import ExtensionManager
from modules.sumi.engine.sampling import loop
from modules.sumi.engine.sampling.denoiser import CFGDenoiser
from modules.sumi.engine.sampling.k_loop import KSampler
from modules.sumi.engine.sampling.model_switch import ModelSwitch, completed_ratio, training_sigmas
from modules.sumi.engine.sampling.samplers import build_scheduler, call_sigma
from tests.fixtures.tiny_models import write_tiny_checkpoint

SIZE = 64
SAMPLERS = ("Euler a", "DPM++ 2M", "Heun", "DDIM")
# Sumi runs these itself (`k_loop`): the switch stops the sampler at a model call and resumes it
OWN_SAMPLERS = ("UniPC", "Restart", "DPM adaptive", "DDIM CFG++", "DPM++ 3M SDE", "DPM fast")


def _load(path):
    model = load_checkpoint(path)
    for module in model.modules():
        module.eval()
    return model


@pytest.fixture(scope="module")
def sd1_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("switch")
    paths = [folder / "a.safetensors", folder / "b.safetensors"]
    for seed, path in enumerate(paths, start=1):
        write_tiny_checkpoint(path, "SD1", seed=seed)
    return tuple(_load(p) for p in paths)


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl_ckpt):
    return _load(tiny_sdxl_ckpt[0])


def request(sampler: str, steps: int = 6) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red fox in the snow", "a lighthouse at dusk"],
        negative_prompts=["blurry", ""],
        seeds=[101, 102],
        width=SIZE,
        height=SIZE,
        steps=steps,
        sampler=sampler,
        eta_noise_seed_delta=31337,
    )


@pytest.mark.parametrize("sampler", [*SAMPLERS, "DPM++ 2M SDE", "DPM++ SDE", *OWN_SAMPLERS])
def test_switching_to_the_same_model_is_bit_for_bit_no_switch(sd1_pair, sampler):
    model = sd1_pair[0]
    plain = engine.generate(model, request(sampler), progress_bar=False)
    switched = engine.generate(
        model, request(sampler), progress_bar=False, switch=ModelSwitch(0.5, lambda: model, by_steps=True)
    )
    assert switched.switched and not plain.switched
    assert torch.equal(plain.latents, switched.latents)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_switch_equals_one_loop_whose_denoiser_changes_model_at_that_step(sd1_pair, sampler):
    a, b = sd1_pair
    req = request(sampler)
    result = engine.generate(a, req, progress_bar=False, switch=ModelSwitch(0.5, lambda: b, by_steps=True))

    # By hand: one uninterrupted loop, the first half of its model calls on A, the rest on B.
    built = build_scheduler(req.sampler, req.schedule, a.scheduler_config, seed=req.seeds[0])
    calls = req.steps * 2 if built.spec.second_order else req.steps
    sigma_of = lambda t: call_sigma(built.scheduler, t)  # noqa: E731
    none = ExtensionManager()
    on_a = CFGDenoiser(a.unet, engine.conditioning(a, req, calls), calls, none, sigma_of=sigma_of)
    on_b = CFGDenoiser(b.unet, engine.conditioning(b, req, calls), calls, none, sigma_of=sigma_of)
    used: list[str] = []

    def denoise(x, t, i):
        use_b = i / len(built.stepping.timesteps) >= 0.5  # A1111's ratio by sampling steps
        used.append("b" if use_b else "a")
        return (on_b if use_b else on_a)(x, t, i)

    generators, noise = engine.initial_noise(a, req)
    latents = loop.sample(denoise, built, noise, req.steps, generators=generators, progress_bar=False)
    assert "a" in used and "b" in used and used == sorted(used)
    torch.testing.assert_close(result.latents, latents, rtol=0, atol=1e-5)
    by_hand = vae_ops.to_pil(vae_ops.decode(b, latents))  # the refiner decodes, as in A1111
    assert [i.tobytes() for i in result.images] == [i.tobytes() for i in by_hand]


@pytest.mark.parametrize("sampler", OWN_SAMPLERS)
def test_sumis_own_samplers_switch_mid_run_as_one_loop_whose_denoiser_changes_model(sd1_pair, sampler):
    """A1111's `apply_refiner` swaps the model inside the denoiser: the sampler's state (multistep
    history, Brownian tree, DPM adaptive's step control) goes on. Sumi's own samplers do the same."""
    a, b = sd1_pair
    req = request(sampler)
    result = engine.generate(a, req, progress_bar=False, switch=ModelSwitch(0.5, lambda: b, by_steps=True))

    built = build_scheduler(req.sampler, req.schedule, a.scheduler_config, seed=req.seeds[0], seeds=req.seeds)
    assert isinstance(built.scheduler, KSampler)
    calls = req.steps * 2 if built.spec.second_order else req.steps
    sigma_of = lambda t: call_sigma(built.scheduler, t)  # noqa: E731
    none = ExtensionManager()
    on_a = CFGDenoiser(a.unet, engine.conditioning(a, req, calls), calls, none, sigma_of=sigma_of)
    on_b = CFGDenoiser(b.unet, engine.conditioning(b, req, calls), calls, none, sigma_of=sigma_of)
    progress = {"done": 0, "total": req.steps}
    used: list[str] = []

    def report(info):
        progress.update(done=info.step + 1, total=info.total)

    class Switching:  # one denoiser for the whole loop; CFG++ asks it for its unconditional prediction
        cfg_multiplier, keep_uncond = 1.0, False

        def __call__(self, x, t, i):
            use_b = progress["done"] / progress["total"] >= 0.5  # by sampling steps, as the switch
            used.append("b" if use_b else "a")
            for denoiser in (on_a, on_b):
                denoiser.cfg_multiplier, denoiser.keep_uncond = self.cfg_multiplier, self.keep_uncond
            out = (on_b if use_b else on_a)(x, t, i)
            self.last_uncond = (on_b if use_b else on_a).last_uncond
            return out

    generators, noise = engine.initial_noise(a, req)
    latents = loop.sample(
        Switching(), built, noise, req.steps, generators=generators, callback=report, progress_bar=False
    )
    assert result.switched and "a" in used and "b" in used and used == sorted(used)
    torch.testing.assert_close(result.latents, latents, rtol=0, atol=1e-5)


def test_by_noise_level_restart_hands_over_once_and_reports_every_step_once(sd1_pair):
    """A1111's rule checks every model call, so the switch may fall between the two evaluations of one
    of Restart's Heun steps (or inside a restart segment, where the noise rises again): the refiner
    loads once, and the steps go on being reported once each, in order."""
    a, b = sd1_pair
    seen: list[int] = []
    loaded: list[int] = []

    def load():
        loaded.append(len(seen))
        return b

    result = engine.generate(
        a,
        request("Restart", steps=10),
        progress_bar=False,
        callback=lambda info: seen.append(info.step),
        switch=ModelSwitch(0.4, load),
    )
    assert result.switched and len(loaded) == 1 and 0 < loaded[0] < 10
    assert seen == sorted(set(seen)) and seen[-1] == max(seen)


def test_a_refiner_that_fails_to_load_leaves_no_sampler_thread_behind(sd1_pair):
    def load():
        raise FileNotFoundError("refiner.safetensors is gone")

    with pytest.raises(FileNotFoundError, match="gone"):
        engine.generate(
            sd1_pair[0], request("UniPC"), progress_bar=False, switch=ModelSwitch(0.5, load, by_steps=True)
        )
    assert not [t for t in threading.enumerate() if t.name == "sumi-sampler"]


def test_an_interrupt_after_the_switch_stops_sumis_sampler_on_the_refiner(sd1_pair):
    a, b = sd1_pair
    control = loop.SamplingControl()
    switched: list[int] = []
    steps: list[int] = []

    def load():
        switched.append(1)
        return b

    def callback(info):
        steps.append(info.step)
        if switched:
            control.interrupted = True

    result = engine.generate(
        a,
        request("DPM++ 3M SDE", steps=8),
        progress_bar=False,
        callback=callback,
        control=control,
        switch=ModelSwitch(0.5, load, by_steps=True),
    )
    assert result.switched and result.stopped_early
    assert len(steps) < 8 and len(result.images) == 2
    assert not [t for t in threading.enumerate() if t.name == "sumi-sampler"]


def test_a_switch_at_one_never_happens(sd1_pair):
    a, b = sd1_pair
    loaded: list[int] = []
    plain = engine.generate(a, request("Euler"), progress_bar=False)
    never = engine.generate(
        a, request("Euler"), progress_bar=False, switch=ModelSwitch(1.0, lambda: loaded.append(1) or b)
    )
    assert not never.switched and not loaded and torch.equal(plain.latents, never.latents)


@pytest.mark.parametrize(("sampler", "at"), [("Euler", 0.8), ("DPM++ 2M", 0.5), ("DDIM", 0.3)])
def test_by_noise_level_the_switch_is_at_a1111s_completed_ratio(sd1_pair, sampler, at):
    """A1111 (default): ratio = (999 - index of the nearest training sigma) / 1000 at each model call."""
    a, b = sd1_pair
    req = request(sampler, steps=10)
    seen: list[int] = []
    switched_after: list[int] = []

    def load():
        switched_after.append(len(seen))  # the steps run on the main model
        return b

    engine.generate(
        a, req, progress_bar=False, callback=lambda info: seen.append(info.step), switch=ModelSwitch(at, load)
    )
    built = build_scheduler(req.sampler, req.schedule, a.scheduler_config, seed=req.seeds[0])
    built.stepping.set_timesteps(req.steps)
    table = training_sigmas(built)
    expected = None
    for i, t in enumerate(built.stepping.timesteps):
        if built.spec.timestep_sampler:
            k = int(t)
        else:
            sigma = float(built.scheduler.sigmas[i])  # pyright: ignore[reportAttributeAccessIssue, reportIndexIssue]
            k = int(torch.argmin(torch.abs(table - sigma)))
        if (999 - k) / 1000 >= at:
            expected = i
            break
        assert completed_ratio(built, i, 10, t, False, table) < at
    assert expected is not None and 0 < expected < req.steps
    assert switched_after == [expected]
    assert seen == list(range(req.steps))  # every step ran once, across both models


def test_any_four_channel_model_may_refine_another(sd1_pair, sdxl):
    """A1111 lets an SDXL model continue an SD1 model's latents (same shape): no crash, full images."""
    result = engine.generate(
        sd1_pair[0],
        request("Euler"),
        progress_bar=False,
        switch=ModelSwitch(0.5, lambda: sdxl, by_steps=True),
    )
    assert result.switched and [i.size for i in result.images] == [(SIZE, SIZE)] * 2


@pytest.mark.parametrize(("sampler", "at"), [("DPM++ 3M SDE", 0.5), ("UniPC", 0.6), ("Restart", 0.3)])
def test_sumis_own_samplers_switch_at_the_first_model_call_past_a1111s_ratio(sd1_pair, sampler, at):
    """The noise-level rule for the samplers Sumi runs itself: each model call's sigma (UniPC: its
    timestep) gives the ratio, and the refiner loads before the first call that reaches `at`."""
    a, b = sd1_pair
    req = request(sampler, steps=10)
    seen: list[int] = []
    switched_after: list[int] = []

    def load():
        switched_after.append(len(seen))
        return b

    engine.generate(
        a, req, progress_bar=False, callback=lambda info: seen.append(info.step), switch=ModelSwitch(at, load)
    )

    # A plain run of the same sampler, recording each model call's ratio and the steps done before it
    built = build_scheduler(req.sampler, req.schedule, a.scheduler_config, seed=req.seeds[0], seeds=req.seeds)
    table, done, ratios = training_sigmas(built), [0], []
    calls = req.steps * 2 if built.spec.second_order else req.steps
    on_a = CFGDenoiser(
        a.unet,
        engine.conditioning(a, req, calls),
        calls,
        ExtensionManager(),
        sigma_of=lambda t: call_sigma(built.scheduler, t),
    )

    def denoise(x, t, i):
        ratios.append((completed_ratio(built, done[0], req.steps, t, False, table), done[0]))
        return on_a(x, t, i)

    generators, noise = engine.initial_noise(a, req)
    loop.sample(
        denoise,
        built,
        noise,
        req.steps,
        generators=generators,
        callback=lambda info: done.__setitem__(0, info.step + 1),
        progress_bar=False,
    )
    expected = next(steps_done for ratio, steps_done in ratios if ratio >= at)
    assert 0 < expected < req.steps and switched_after == [expected]
    assert seen == list(range(req.steps))
