"""services.jobs.refiner: A1111's rules for when the refiner runs (hires pass setting, same checkpoint,
no switch_at), what it writes into the infotext, and its always-on script args."""

from __future__ import annotations

import contextlib

import pytest
import torch

from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs import refiner
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.models.checkpoints import CheckpointRegistry, VaeRegistry
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.settings.options import Options
from tests.fixtures.tiny_models import write_tiny_checkpoint


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("refiner_models") / "Stable-diffusion"
    folder.mkdir()
    write_tiny_checkpoint(folder / "main.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "fine.safetensors", "SD1", seed=2)
    return folder


@pytest.fixture
def models(model_dir) -> ModelManager:
    options = Options()
    options.data["sd_model_checkpoint"] = "main.safetensors"
    cpu = DeviceConfig(torch.device("cpu"), torch.float32, torch.float32)
    manager = ModelManager(CheckpointRegistry([model_dir]), VaeRegistry([], [model_dir]), options, cpu)
    manager.get()
    return manager


def job(**fields) -> StableDiffusionProcessingTxt2Img:
    return StableDiffusionProcessingTxt2Img(prompt="a fox", **fields)


def switch_for(p, models, **kw):
    assert models.active is not None
    refiner.prepare(p, models)
    stack = contextlib.ExitStack()
    return refiner.model_switch(p, models, models.options, models.active, stack, **kw), stack


def test_the_switch_loads_the_refiner_writes_the_infotext_and_gives_the_model_back(models):
    main = models.active
    p = job(refiner_checkpoint="fine", refiner_switch_at=0.7)
    switch, stack = switch_for(p, models)
    assert switch is not None and switch.at == 0.7 and not switch.by_steps
    assert "Refiner" not in p.extra_generation_params  # nothing until the switch happens
    with stack:
        switched = switch.load()
        assert models.active is not main and models.active.sd is switched
        assert p.extra_generation_params == {
            "Refiner": models.active.checkpoint.short_title,
            "Refiner switch at": 0.7,
        }
    assert models.active is main and models.options.sd_model_checkpoint == main.checkpoint.title


@pytest.mark.parametrize("name", [None, "", "None", "none", "main"])
def test_no_refiner_or_the_jobs_own_checkpoint_is_no_switch(models, name):
    assert switch_for(job(refiner_checkpoint=name, refiner_switch_at=0.5), models)[0] is None


def test_without_switch_at_the_refiner_runs_from_the_start_and_by_steps_follows_the_setting(models):
    models.options.data["refiner_switch_by_sample_steps"] = True
    p = job(refiner_checkpoint="fine")
    switch, stack = switch_for(p, models)
    assert switch is not None and switch.at == 0.0 and switch.by_steps
    with stack:
        switch.load()
    assert p.extra_generation_params["Refiner switch by sampling steps"] is True
    assert "Refiner switch at" not in p.extra_generation_params


@pytest.mark.parametrize(
    ("setting", "first", "second"),
    [("second pass", False, True), ("first pass", True, False), ("both passes", True, True)],
)
def test_with_hires_fix_the_setting_picks_the_pass(models, setting, first, second):
    models.options.data["hires_fix_refiner_pass"] = setting
    p = job(refiner_checkpoint="fine", refiner_switch_at=0.5, enable_hr=True)
    assert (switch_for(p, models)[0] is not None) == first
    switch, stack = switch_for(p, models, hires_pass=True)
    assert (switch is not None) == second
    if switch is not None:
        with stack:
            switch.load()
        assert p.extra_generation_params.get("Hires refiner") == (
            None if setting == "second pass" else setting
        )


def test_bad_values_are_refused(models):
    with pytest.raises(InvalidRequestError, match=r"'nope'.*fine\.safetensors"):
        refiner.prepare(job(refiner_checkpoint="nope"), models)
    with pytest.raises(InvalidRequestError, match="refiner_switch_at must be a number from 0 to 1"):
        refiner.prepare(job(refiner_checkpoint="fine", refiner_switch_at=1.5), models)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([True, "fine", 0.6], ("fine", 0.6)),
        ([True, "fine"], ("fine", 0.8)),
        ([False, "fine", 0.6], (None, None)),
        ([True, "None", 0.6], (None, None)),
    ],
)
def test_always_on_script_args(args, expected):
    p = job(refiner_checkpoint="other", refiner_switch_at=0.1)
    refiner.apply_script_args(p, {"Refiner": {"args": args}})
    assert (p.refiner_checkpoint, p.refiner_switch_at) == expected


def test_always_on_script_args_of_the_wrong_shape_are_refused():
    with pytest.raises(InvalidRequestError, match="Refiner.args"):
        refiner.apply_script_args(job(), {"refiner": {"args": ["yes", 3]}})
    p = job(refiner_checkpoint="fine")
    refiner.apply_script_args(p, {"controlnet": {"args": []}})
    assert p.refiner_checkpoint == "fine"
