"""Prompt editing, alternation and AND in the denoiser: the conditioning used at every model call."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.extensions import DenoiserCall, Extension, HookPoint, hook
from modules.sumi.engine.sampling.denoiser import CFGDenoiser, Guidance, guided
from modules.sumi.engine.text import schedule as schedule_mod
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import ComposableCond, JobConditioning, ScheduledCond


@pytest.fixture(scope="module")
def model(tiny_sd1_ckpt):
    return load_checkpoint(tiny_sd1_ckpt[0])


def _record_texts(
    model, prompt: str, steps: int, sampler: str = "Euler", negative: str = ""
) -> list[list[str]]:
    """Run a job and return, for every model call, the positive texts image 0 used."""
    seen: list[list[str]] = []

    class RecordTexts(Extension):
        @hook(HookPoint.PRE_MODEL_CALL)
        def record(self, call: DenoiserCall) -> None:
            seen.append(call.conditioning.texts_at(call.step)[0])

    request = engine.BatchRequest(
        prompts=[prompt],
        negative_prompts=[negative],
        seeds=[1],
        width=32,
        height=32,
        steps=steps,
        sampler=sampler,
    )
    engine.generate(model, request, extensions=[RecordTexts()], progress_bar=False)
    return seen


def test_prompt_editing_switches_on_the_step_the_schedule_says(model):
    texts = _record_texts(model, "a [cat:dog:3] on a sofa", 10)
    assert [t[0] for t in texts] == ["a cat on a sofa"] * 4 + ["a dog on a sofa"] * 6  # A1111's <= boundary


def test_fractions_and_removal(model):
    texts = _record_texts(model, "[red::0.5] car", 10)
    assert [t[0] for t in texts] == ["red car"] * 6 + [" car"] * 4  # int(0.5 * 10) = 5, then <=


def test_alternation_changes_every_step(model):
    """A1111's schedule is [[1, cat], [2, dog], [3, cat], ...] and its `step <= end` pick (counting model
    calls from 0) uses cat twice before alternating; we reproduce that."""
    texts = _record_texts(model, "a [cat|dog] photo", 5)
    assert [t[0] for t in texts] == [
        "a cat photo",
        "a cat photo",
        "a dog photo",
        "a cat photo",
        "a dog photo",
    ]


def test_second_order_samplers_count_model_calls(model):
    texts = _record_texts(model, "[a:b:3]", 5, sampler="Heun")
    assert len(texts) == 9  # Heun: 2 * 5 - 1 model calls
    assert [t[0] for t in texts] == ["a"] * 4 + ["b"] * 5


def test_and_parts_are_all_used_with_their_weights(model):
    texts = _record_texts(model, "a cat AND a hat:0.5", 3)
    assert texts[0] == ["a cat", " a hat"]


def test_each_distinct_text_is_encoded_once_per_job(model, monkeypatch):
    encoded: list[list[str]] = []
    real = schedule_mod.encode_prompts

    def counting(encoders, texts, *args, **kwargs):
        encoded.append(list(texts))
        return real(encoders, texts, *args, **kwargs)

    monkeypatch.setattr(schedule_mod, "encode_prompts", counting)
    _record_texts(model, "a [cat:dog:0.5] AND [red|blue] ball", 12, negative="[ugly:3]")
    flat = [t for batch in encoded for t in batch]
    assert sorted(flat) == sorted(set(flat))  # nothing encoded twice
    assert len(encoded) == 2  # one batch for positive texts, one for negative


class _FakeUNet:
    """A stand-in UNet whose output shows which conditioning row each latent row was paired with."""

    def __call__(self, x, timestep, encoder_hidden_states, added_cond_kwargs=None, return_dict=False):
        return (x * encoder_hidden_states.mean(dim=(1, 2)).view(-1, 1, 1, 1),)


def _row(value: float, tokens: int = 77) -> Conditioning:
    return Conditioning(torch.full((1, tokens, 4), value))


def _call(conds, unconds, cfg=7.0) -> DenoiserCall:
    x = torch.arange(1, len(unconds) + 1, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 4, 2, 2).clone()
    return DenoiserCall(x, torch.tensor(10.0), 0, 10, cfg, conds, unconds)


def test_composable_guidance_is_a1111s_formula():
    call = _call([[(1.0, _row(2.0)), (-0.5, _row(3.0))], [(0.7, _row(5.0))]], [_row(1.0), _row(0.5)])
    out = guided(_FakeUNet(), call)
    x1, x2 = 1.0, 2.0
    image1 = x1 * 1.0 + 7.0 * (1.0 * (x1 * 2.0 - x1 * 1.0) - 0.5 * (x1 * 3.0 - x1 * 1.0))
    image2 = x2 * 0.5 + 7.0 * 0.7 * (x2 * 5.0 - x2 * 0.5)
    assert torch.allclose(out[0], torch.full((4, 2, 2), image1))
    assert torch.allclose(out[1], torch.full((4, 2, 2), image2))


def test_cond_and_uncond_of_different_lengths_run_as_two_batches():
    call = _call([[(1.0, _row(2.0, tokens=154))]], [_row(1.0)])
    out = guided(_FakeUNet(), call)
    assert torch.allclose(out, torch.full_like(out, 1.0 + 7.0 * (2.0 - 1.0)))


def test_cfg_scale_one_uses_only_the_cond_prediction():
    calls = []

    class Counting(_FakeUNet):
        def __call__(self, x, *args, **kwargs):
            calls.append(x.shape[0])
            return super().__call__(x, *args, **kwargs)

    guided(Counting(), _call([[(1.0, _row(2.0))]], [_row(1.0)], cfg=1.0))
    assert calls == [1]


def test_texts_at_picks_the_first_entry_not_yet_ended():
    sched = [ScheduledCond(3, _row(1.0), "a"), ScheduledCond(10, _row(2.0), "b")]
    jc = JobConditioning([ComposableCond([(1.0, sched)])], [sched])
    # past the end A1111 falls back to the first entry
    assert [jc.texts_at(s)[0][0] for s in (0, 3, 4, 10, 11)] == ["a", "a", "b", "b", "a"]
    denoiser = CFGDenoiser(_FakeUNet(), Guidance(jc, 7.0), 10)
    assert (
        denoiser.make_call(torch.zeros(1, 4, 2, 2), torch.tensor(1.0), 4).conds[0][0][1].context.mean() == 2.0
    )


def test_pad_cond_uncond_runs_one_batch_with_empty_chunks():
    empty = _row(0.25)
    call = _call([[(1.0, _row(2.0, tokens=154))]], [_row(1.0)])
    call.empty = empty
    shapes = []

    class Recording(_FakeUNet):
        def __call__(self, x, timestep, encoder_hidden_states, **kwargs):
            shapes.append(tuple(encoder_hidden_states.shape))
            return super().__call__(x, timestep, encoder_hidden_states, **kwargs)

    out = guided(Recording(), call)
    assert shapes == [(2, 154, 4)]  # one batch: uncond padded with the empty chunk
    uncond_mean = (1.0 + 0.25) / 2
    assert torch.allclose(out, torch.full_like(out, uncond_mean + 7.0 * (2.0 - uncond_mean)))


def test_batches_with_the_same_prompts_are_encoded_once_per_job(model, monkeypatch):
    calls = []
    real = schedule_mod.build
    monkeypatch.setattr(schedule_mod, "build", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache: dict = {}
    request = engine.BatchRequest(
        prompts=["a [b:c:2]"], negative_prompts=[""], seeds=[1], width=32, height=32, steps=3, sampler="Euler"
    )
    for seed in (1, 2, 3):
        request.seeds = [seed]
        engine.generate(model, request, progress_bar=False, conditioning_cache=cache)
    assert len(calls) == 1
