"""`switched_model`: another checkpoint for part of a job (refiner, hires checkpoint), the setting
`sd_model_checkpoint` untouched and the job's own model active again afterwards."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.model_switch import switched_model
from modules.sumi.services.models.checkpoints import CheckpointRegistry, VaeRegistry
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.settings.options import Options
from tests.fixtures.tiny_models import write_tiny_checkpoint


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "Stable-diffusion"
    folder.mkdir()
    write_tiny_checkpoint(folder / "main.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "other.safetensors", "SD1", seed=2)
    return folder


def make_manager(model_dir, **settings) -> tuple[ModelManager, list[str]]:
    options = Options()
    options.data.update(settings)
    cpu = DeviceConfig(torch.device("cpu"), torch.float32, torch.float32)
    models = ModelManager(CheckpointRegistry([model_dir]), VaeRegistry([], [model_dir]), options, cpu)
    seen: list[str] = []
    models.on_model_loaded.append(lambda loaded: seen.append(loaded.checkpoint.name))
    return models, seen


def test_the_named_checkpoint_is_active_inside_and_the_job_model_after(model_dir):
    models, seen = make_manager(model_dir, sd_model_checkpoint="main.safetensors")
    main = models.get()
    setting = models.options.sd_model_checkpoint
    with switched_model(models, "other") as refiner:
        assert models.active is refiner and refiner.checkpoint.name == "other.safetensors"
        assert models.options.sd_model_checkpoint == setting
        assert not torch.equal(next(refiner.sd.unet.parameters()), next(main.sd.unet.parameters()))
    assert models.active is main  # the very object the job holds
    assert models.options.sd_model_checkpoint == setting == main.checkpoint.title
    assert seen == [
        "main.safetensors",
        "other.safetensors",
        "main.safetensors",
    ]  # A1111 fires on_model_loaded


def test_the_job_model_comes_back_even_when_the_cache_limit_dropped_it(model_dir):
    models, _ = make_manager(model_dir, sd_checkpoints_limit=1, sd_checkpoints_keep_in_cpu=False)
    main = models.get()
    with switched_model(models, "other.safetensors"):
        assert models.loaded_titles() == [models.checkpoints.match("other").title]  # type: ignore[union-attr]
    assert models.active is main and models.loaded_titles() == [main.checkpoint.title]


def test_with_room_in_the_cache_both_models_stay_loaded(model_dir):
    models, _ = make_manager(model_dir, sd_checkpoints_limit=2, sd_checkpoints_keep_in_cpu=True)
    main = models.get()
    with switched_model(models, "other") as first:
        pass
    with switched_model(models, "other") as second:
        assert second is first  # from the RAM cache, not read again
    assert models.active is main and len(models.loaded_titles()) == 2


def test_the_job_model_is_back_after_an_error_in_the_block(model_dir):
    models, _ = make_manager(model_dir)
    main = models.get()
    with pytest.raises(RuntimeError), switched_model(models, "other"):
        raise RuntimeError("sampling failed")
    assert models.active is main


def test_switching_to_the_active_checkpoint_changes_nothing(model_dir):
    models, seen = make_manager(model_dir)
    main = models.get()
    with switched_model(models, main.checkpoint.title) as same:
        assert same is main
    assert models.active is main and seen == ["main.safetensors"]


def test_an_unknown_name_is_refused_naming_the_choices(model_dir):
    models, _ = make_manager(model_dir)
    models.get()
    choices = r"'nope'.*main\.safetensors.*other\.safetensors"
    with pytest.raises(InvalidRequestError, match=choices), switched_model(models, "nope"):
        pass
