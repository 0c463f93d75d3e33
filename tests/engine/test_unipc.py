"""A1111's UniPC: Sumi's solver gives the UniPC authors' trajectories (the solver A1111 ships) for every
variant, skip type, order and img2img start; a job with it calls the model once per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modules.sumi.engine.sampling.schedules import ModelSigmas
from modules.sumi.engine.sampling.unipc import model_timesteps, unipc
from tests.engine.test_k_samplers import Recorder
from tests.engine.unipc_cases import CASES, a1111_timesteps, start_latents, toy_eps

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "reference" / "unipc.json").read_text())
ALPHAS = ModelSigmas.from_config({}).alphas_cumprod


def _label(case: dict) -> str:
    return "-".join(str(v) for v in case.values())


@pytest.mark.parametrize("case", CASES, ids=_label)
def test_trajectory_equals_the_unipc_authors_solver(case):
    expected = next(r for r in REFERENCE if all(r.get(k) == v for k, v in case.items()))
    levels = a1111_timesteps(case["steps"], case.get("run_steps"))
    calls: list[float] = []

    def model(x: torch.Tensor, timestep: float) -> torch.Tensor:
        calls.append(timestep)
        return toy_eps(x, timestep)

    recorder = Recorder()
    options = {k: case[k] for k in ("variant", "skip_type", "order", "lower_order_final")}
    x = unipc(
        model, start_latents(), levels, ALPHAS, recorder, None, is_img2img="run_steps" in case, **options
    )

    torch.testing.assert_close(
        torch.tensor(calls), torch.tensor(expected["model_timesteps"]), rtol=0, atol=1e-3
    )
    torch.testing.assert_close(x.reshape(-1), torch.tensor(expected["result"]), rtol=1e-6, atol=1e-6)
    assert recorder.total == len(levels) == len(calls) == len(recorder.done_steps)
    predicted = model_timesteps(levels, ALPHAS, "run_steps" in case, case["skip_type"])
    torch.testing.assert_close(predicted, torch.tensor(calls))


def test_an_order_above_the_steps_runs_at_the_steps_order():
    levels = a1111_timesteps(20)[:2]
    recorder = Recorder()
    x = unipc(toy_eps, start_latents(), levels, ALPHAS, recorder, None, order=5)
    assert torch.isfinite(x).all() and recorder.total == 2


@pytest.mark.parametrize(("name", "value"), [("variant", "bh3"), ("skip_type", "karras")])
def test_an_unknown_variant_or_skip_type_is_refused(name, value):
    with pytest.raises(ValueError, match=value):
        unipc(toy_eps, start_latents(), a1111_timesteps(10), ALPHAS, Recorder(), None, **{name: value})


def test_no_steps_means_no_model_calls():
    """img2img at a denoising strength too low for one step runs nothing."""
    assert model_timesteps(a1111_timesteps(20)[:0], ALPHAS, True, "time_uniform").shape == (0,)
