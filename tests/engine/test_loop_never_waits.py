"""The sampling loop never waits for the device: between the first and the last step nothing reads a
device value on the host and every host-to-device copy is non-blocking.

On a GPU, `float(sigma)` or a blocking `tensor.to("cuda")` once per step makes the CPU wait until the GPU
has run the step, so it cannot queue the next step meanwhile. Here the model runs on PyTorch's "meta"
device, which has shapes but no values: any read of a device value raises, and a watch records every
blocking copy from the host to it. The whole engine runs (prompt editing, AND, CFG, ControlNet,
IP-Adapter, reference-only, Tiled Diffusion with a region, img2img with a mask, SD1, SDXL and its refiner
switch) with every sampler but two that must read the device: DPM adaptive decides each step from its
error estimate, and DPM++ SDE's Brownian tree lives on the latents' device (meta cannot draw).
"""

from __future__ import annotations

import traceback
from dataclasses import replace

import pytest
import torch
from diffusers import (
    ControlNetModel,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    KDPM2AncestralDiscreteScheduler,
    LCMScheduler,
)
from torch.utils._python_dispatch import TorchDispatchMode

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.controlnet.clip_vision import ClipImageFeatures
from modules.sumi.engine.controlnet.control import ControlUnit
from modules.sumi.engine.controlnet.ip_adapter import ImagePromptUnit, build_ip_adapter
from modules.sumi.engine.controlnet.reference import ReferenceUnit
from modules.sumi.engine.extensions import Extension, HookPoint, LoopContext, hook
from modules.sumi.engine.families.base import scheduler_config
from modules.sumi.engine.host_values import scalar_on, send
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.ancestral import DPM2AncestralScheduler
from modules.sumi.engine.sampling.lcm import LCMHostNoiseScheduler
from modules.sumi.engine.sampling.model_switch import ModelSwitch
from modules.sumi.engine.sampling.noise_sources import randn_on
from modules.sumi.engine.sampling.samplers import SAMPLERS
from modules.sumi.engine.tiled_diffusion import TiledDiffusion, TileSettings
from modules.sumi.engine.tiled_regions import Region
from tests.fixtures.tiny_ip_adapter import CLIP_PROJECTION, CLIP_WIDTH, ip_adapter_state

META = torch.device("meta")
MUST_READ = {"DPM adaptive", "DPM++ SDE"}
SAMPLER_NAMES = [spec.name for spec in SAMPLERS if spec.name not in MUST_READ]


class BlockingCopies(TorchDispatchMode):
    """Records (with where they were made) the blocking host-to-meta copies made while `on`."""

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.on and self._blocking_copy(func, args, kwargs):
            self.seen.append("".join(traceback.format_stack(limit=6)[:-1]))
        return func(*args, **kwargs)

    @staticmethod
    def _blocking_copy(func, args, kwargs) -> bool:
        if func is torch.ops.aten._to_copy.default:
            device = kwargs.get("device")
            to_meta = device is not None and torch.device(device).type == "meta"
            return to_meta and args[0].device.type == "cpu" and not kwargs.get("non_blocking", False)
        if func is torch.ops.aten.copy_.default:
            non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
            return args[0].device.type == "meta" and args[1].device.type == "cpu" and not non_blocking
        return False


class _LoopEnded(Exception):
    """Raised at the end of the loop: the meta latents cannot be decoded into pictures."""

    def __init__(self, latents: torch.Tensor) -> None:
        super().__init__("loop ended")
        self.latents = latents


class WatchTheLoop(Extension):
    def __init__(self, watch: BlockingCopies) -> None:
        self.watch = watch

    @hook(HookPoint.PRE_LOOP)
    def begin(self, context: LoopContext) -> None:
        self.watch.on = True

    @hook(HookPoint.POST_LOOP)
    def end(self, context: LoopContext) -> None:
        self.watch.on = False
        raise _LoopEnded(context.latents)


def _on_meta(path) -> SDModel:
    model = load_checkpoint(path)
    for module in (model.unet, model.vae, *(spec.model for spec in model.text_encoders)):
        module.eval().to(META)
    return model


@pytest.fixture(scope="module")
def meta_model(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    controlnet = ControlNetModel.from_unet(model.unet).eval().to(META)
    return _on_meta(tiny_sd1_ckpt[0]), controlnet


def _request(sampler: str, **kw) -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a (red:1.3) fox AND a [cat:dog:2] :0.6"] * 2,
        negative_prompts=["blurry", ""],
        seeds=[5, 6],
        width=64,
        height=64,
        steps=5,
        cfg_scale=6.0,
        sampler=sampler,
        eta_ddim=0.7,  # DDIM's fresh noise on
        **kw,
    )


def _run_loop(model, request: engine.BatchRequest, extensions=(), side: int = 8, **generate) -> list[str]:
    watch = BlockingCopies()
    with watch, pytest.raises(_LoopEnded) as ended:
        engine.generate(
            model,
            request,
            extensions=[*extensions, WatchTheLoop(watch)],
            progress_bar=False,
            nan_check=False,
            **generate,
        )
    assert ended.value.latents.device == META and ended.value.latents.shape == (2, 4, side, side)
    return watch.seen


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_txt2img_steps_never_wait_for_the_device(meta_model, sampler):
    assert _run_loop(meta_model[0], _request(sampler)) == []


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE Heun", "DDIM", "LCM", "UniPC"])
def test_inpainting_steps_never_wait_for_the_device(meta_model, sampler):
    init = img2img.InitLatents(
        latents=torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)),
        strength=0.6,
        mask=(torch.arange(64).reshape(1, 1, 8, 8) % 3 == 0).float(),
        fill="latent noise",
    )
    assert _run_loop(meta_model[0], _request(sampler, init=init)) == []


def test_controlnet_steps_never_wait_for_the_device(meta_model):
    model, controlnet = meta_model
    unit = ControlUnit(controlnet, torch.rand(1, 3, 64, 64), guidance_start=0.2, guidance_end=0.8)
    assert _run_loop(model, _request("DPM++ 2M", control_units=[unit])) == []


def test_the_watch_sees_a_blocking_copy_and_meta_refuses_a_read():
    watch = BlockingCopies()
    with watch:
        watch.on = True
        on_meta = torch.ones(3).to(META)
        torch.ones(3).to(META, non_blocking=True)
    assert len(watch.seen) == 1 and "torch.ones(3).to(META)" in watch.seen[0]
    with pytest.raises(RuntimeError, match="meta"):
        float(on_meta.sum())


def test_tiled_diffusion_regions_and_reference_steps_never_wait_for_the_device(meta_model):
    model = meta_model[0]
    request = replace(_request("Euler a"), width=128, height=128)
    for method, blend in (("MultiDiffusion", "Background"), ("Mixture of Diffusers", "Foreground")):
        settings = TileSettings(method, tile_width=8, tile_height=8, overlap=4)
        region = Region(0.0, 0.0, 0.5, 1.0, "a red hat", blend_mode=blend, seed=3)
        assert _run_loop(model, request, [TiledDiffusion(settings, [region], True)], side=16) == []
    reference = ReferenceUnit(torch.randn(1, 4, 8, 8), "reference_adain+attn")
    assert _run_loop(model, replace(_request("Euler a"), control_units=[reference])) == []


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "Euler a", "DPM++ 3M SDE"])
def test_sdxl_steps_never_wait_for_the_device(tiny_sdxl_ckpt, sampler):
    assert _run_loop(_on_meta(tiny_sdxl_ckpt[0]), _request(sampler)) == []


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "Euler a"])
def test_a_refiner_switch_never_waits_for_the_device(tiny_sdxl_ckpt, sampler):
    base, refiner = _on_meta(tiny_sdxl_ckpt[0]), _on_meta(tiny_sdxl_ckpt[0])
    switch = ModelSwitch(0.5, lambda: refiner, by_steps=True)
    assert _run_loop(base, _request(sampler), switch=switch) == []


def _stepped(scheduler, steps: int, noise_given: bool, **step_kw) -> torch.Tensor:
    """Latents after `steps` steps of `scheduler` on a fixed toy model, with per-image CPU generators;
    `noise_given`: the step's fresh noise drawn by `randn_on` and passed as `variance_noise`."""
    scheduler.set_timesteps(steps)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    generators = [torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)]
    for t in scheduler.timesteps:
        out = torch.tanh(scheduler.scale_model_input(x, t)) * 0.3 + t.float() / 1e4
        if noise_given:
            dtype = torch.float32 if "eta" not in step_kw else out.dtype
            noise = randn_on(out.shape, generators, out.device, dtype)
            x = scheduler.step(out, t, x, variance_noise=noise, **step_kw).prev_sample
        else:
            x = scheduler.step(out, t, x, generator=generators, **step_kw).prev_sample
    return x


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_schedulers_that_send_their_noise_step_as_diffusers_bit_for_bit(prediction):
    config = {**scheduler_config(prediction), "prediction_type": prediction}
    for diffusers_class, ours, steps in (
        (KDPM2AncestralDiscreteScheduler, DPM2AncestralScheduler, 5),
        (LCMScheduler, LCMHostNoiseScheduler, 4),
    ):
        theirs = _stepped(diffusers_class.from_config(config), steps, False)
        assert torch.equal(_stepped(ours.from_config(config), steps, False), theirs), ours.__name__
    sde = {**config, "algorithm_type": "sde-dpmsolver++"}
    drawn = _stepped(DPMSolverMultistepScheduler.from_config(sde), 6, False)
    assert torch.equal(_stepped(DPMSolverMultistepScheduler.from_config(sde), 6, True), drawn)
    drawn = _stepped(DDIMScheduler.from_config(config), 6, False, eta=0.7)
    assert torch.equal(_stepped(DDIMScheduler.from_config(config), 6, True, eta=0.7), drawn)


def test_host_values_reach_the_device_without_a_blocking_copy():
    watch = BlockingCopies()
    with watch:
        watch.on = True
        timestep = scalar_on(torch.tensor(981.5), META)
        row = scalar_on(torch.tensor([3.0], dtype=torch.float64), META)
        number = scalar_on(0.25, META, torch.float16)
        noise = send(torch.randn(2, 4, 8, 8), META, torch.float16)
    assert watch.seen == []
    assert (timestep.shape, timestep.dtype, timestep.device) == (torch.Size(()), torch.float32, META)
    assert (row.shape, row.dtype) == (torch.Size([1]), torch.float64)
    assert (number.dtype, noise.dtype, noise.shape) == (torch.float16, torch.float16, (2, 4, 8, 8))
    assert scalar_on(torch.tensor(2.0), torch.device("cpu")).item() == 2.0  # same device: as it is


@pytest.mark.parametrize("kind", ["plain", "plus"])
def test_ip_adapter_steps_never_wait_for_the_device(tiny_sd1_ckpt, kind):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    name = "ip-adapter_sd15.safetensors" if kind == "plain" else "ip-adapter-plus_sd15.safetensors"
    adapter = build_ip_adapter(ip_adapter_state(model.unet, kind, seed=4), name)
    features = ClipImageFeatures(
        image_embeds=torch.randn(1, CLIP_PROJECTION),
        penultimate=torch.randn(1, 257, CLIP_WIDTH),
        zero_image_embeds=torch.zeros(1, CLIP_PROJECTION),
        zero_penultimate=torch.randn(1, 257, CLIP_WIDTH),
    )
    tokens, negative = adapter.tokens(features)  # made on the host: sent once, at the first call
    unit = ImagePromptUnit(adapter.to(META), tokens, negative, weight=0.8, guidance_start=0.2)
    assert _run_loop(_on_meta(tiny_sd1_ckpt[0]), replace(_request("Euler a"), control_units=[unit])) == []
