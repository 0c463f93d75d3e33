"""The model manager places models as the flags and settings ask: --medvram / --medvram-sdxl /
--lowvram offload policies, fp8 weight storage (`fp8_storage`, `cache_fp16_weight`), kept through
model switches, unloads and reloads, with images bit-exact to the plain placement on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modules.sumi.engine import generate as engine
from modules.sumi.engine.accel import fp8
from modules.sumi.engine.accel.offload import OffloadFlags, offloader_of
from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.services.jobs.model_switch import switched_model
from modules.sumi.services.models.checkpoints import CheckpointRegistry, VaeRegistry
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.settings.options import Options
from tests.fixtures.tiny_models import write_tiny_checkpoint

CPU = DeviceConfig(torch.device("cpu"), torch.float32, torch.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_tiny_checkpoint(folder / "main.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "other.safetensors", "SD1", seed=2)
    return folder


def _manager(folders, flags: OffloadFlags = OffloadFlags(), **settings) -> ModelManager:
    options = Options()
    options.data.update(settings)
    registry = CheckpointRegistry(folders, no_hashing=True)
    return ModelManager(registry, VaeRegistry([], folders), options, CPU, offload_flags=flags)


def _image(manager: ModelManager) -> np.ndarray:
    request = engine.BatchRequest(
        prompts=["a blue square"],
        negative_prompts=[""],
        seeds=[3],
        width=32,
        height=32,
        steps=2,
        sampler="Euler a",
    )
    return np.asarray(engine.generate(manager.get().sd, request, progress_bar=False).images[0])


@pytest.fixture(scope="module")
def plain_images(model_dir):
    manager = _manager([model_dir])
    images = {}
    for name in ("main", "other"):
        manager.options.data["sd_model_checkpoint"] = f"{name}.safetensors"
        images[name] = _image(manager)
    return images


def test_medvram_sdxl_offloads_only_sdxl_models(tiny_sd1_ckpt, tiny_sdxl_ckpt):
    flags = OffloadFlags(medvram_sdxl=True)
    manager = _manager([tiny_sd1_ckpt[0].parent, tiny_sdxl_ckpt[0].parent], flags)
    sd1 = manager.load(manager.checkpoints.match("tiny_sd1"))
    assert sd1.sd.extra["offload"] == "none" and offloader_of(sd1.sd) is None
    sdxl = manager.load(manager.checkpoints.match("tiny_sdxl"))
    assert sdxl.sd.extra["offload"] == "med" and offloader_of(sdxl.sd) is not None
    assert sdxl.sd.device == torch.device("cpu")


def test_lowvram_keeps_working_through_switches_unloads_and_reloads(model_dir, plain_images):
    manager = _manager([model_dir], OffloadFlags(lowvram=True), sd_model_checkpoint="main.safetensors")
    assert np.array_equal(_image(manager), plain_images["main"])
    main = manager.active
    assert main is not None and main.sd.extra["offload"] == "low"
    manager.options.data["sd_model_checkpoint"] = "other.safetensors"
    assert np.array_equal(_image(manager), plain_images["other"])
    assert offloader_of(manager.active.sd).report()["policy"] == "low"  # type: ignore[union-attr]
    manager.options.data["sd_model_checkpoint"] = "main.safetensors"
    job_model = manager.get()
    with switched_model(manager, "other"):  # a refiner / hires checkpoint for part of a job
        assert manager.active.sd.extra["offload"] == "low"  # type: ignore[union-attr]
        request = engine.BatchRequest(
            prompts=["a blue square"],
            negative_prompts=[""],
            seeds=[3],
            width=32,
            height=32,
            steps=2,
            sampler="Euler a",
        )
        borrowed = engine.generate(manager.active.sd, request, progress_bar=False).images[0]  # type: ignore[union-attr]
        assert np.array_equal(np.asarray(borrowed), plain_images["other"])
    assert manager.active is job_model and offloader_of(job_model.sd) is not None
    manager.offload()  # A1111's send_everything_to_cpu: every part to RAM, hooks kept
    assert offloader_of(manager.active.sd).resident() == []  # type: ignore[union-attr]
    manager.unload_all()
    manager.options.data["sd_model_checkpoint"] = "main.safetensors"
    assert np.array_equal(_image(manager), plain_images["main"])
    assert manager.active.sd.extra["offload"] == "low"  # type: ignore[union-attr]


def test_fp8_setting_places_again_and_turning_it_off_reads_the_weights_again(model_dir, plain_images):
    manager = _manager([model_dir], OffloadFlags(medvram=True), sd_model_checkpoint="main.safetensors")
    loaded = manager.get()
    full_bytes = fp8.weight_bytes(loaded.sd.unet)
    manager.options.data["fp8_storage"] = "Enable for SDXL"  # an SD1 model: no change
    assert manager.get().sd.extra["fp8"] is False
    manager.options.data["fp8_storage"] = "Enable"
    assert manager.get() is loaded and loaded.sd.extra["fp8"] is True and fp8.is_fp8(loaded.sd.unet)
    assert fp8.weight_bytes(loaded.sd.unet) * 4 == full_bytes  # fp32 -> fp8 on this CPU
    assert loaded.sd.extra["offload"] == "med" and loaded.sd.dtype == torch.float32
    manager.options.data["cache_fp16_weight"] = True  # needs the original weights: read again
    assert fp8.has_fp16_cache(manager.get().sd.unet)
    manager.options.data["fp8_storage"] = "Disable"
    sd = manager.get().sd
    assert manager.active is loaded and not fp8.is_fp8(sd.unet) and sd.extra["fp8"] is False
    assert np.array_equal(_image(manager), plain_images["main"])  # exactly the file's weights again
    on_file = load_file(model_dir / "main.safetensors")
    assert torch.equal(sd.unet.conv_in.weight, on_file["model.diffusion_model.input_blocks.0.0.weight"])


def test_an_extension_can_ask_for_lowvram_on_the_active_model(model_dir, plain_images):
    manager = _manager([model_dir], sd_model_checkpoint="main.safetensors")
    manager.get()
    manager.set_offload("low")
    assert manager.get().sd.extra["offload"] == "low"
    assert np.array_equal(_image(manager), plain_images["main"])
    manager.set_offload(None)
    assert manager.get().sd.extra["offload"] == "none" and offloader_of(manager.active.sd) is None  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="offload policy"):
        manager.set_offload("tiny")
