"""The bench model and the diffusers pipeline a benchmark compares Sumi with (built from Sumi's loaded
model, so both sides run the same weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine import tiny_models
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.samplers import build_scheduler


def write_bench_checkpoint(size: str, folder: Path) -> Path:
    """The bench model as an fp16 A1111 checkpoint: SD1.5's architecture ("sd15") or the demo model ("tiny")."""
    components = tiny_models.full_size("SD1") if size == "sd15" else tiny_models.demo_sd1(0)
    return tiny_models.write_checkpoint(folder / f"bench-{size}.safetensors", components, dtype=torch.float16)


def load_bench_model(checkpoint: Path, devices: DeviceConfig) -> SDModel:
    """`checkpoint` read by Sumi's loader and placed on the bench's device in its dtype."""
    model = load_checkpoint(checkpoint, dtype=devices.dtype)
    model.to(devices.device, devices.dtype)
    return model


def diffusers_pipeline(pipeline_class: type, model: SDModel, scheduler: Any, **components: Any) -> Any:
    """`pipeline_class` (StableDiffusionPipeline, ...Img2ImgPipeline, ...ControlNetPipeline) over `model`'s
    UNet, VAE and first text encoder, with `scheduler`, no safety checker and no progress bar."""
    spec = model.text_encoders[0]
    pipe = pipeline_class(
        vae=model.vae,
        text_encoder=spec.model,
        tokenizer=spec.tokenizer,
        unet=model.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **components,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sampler_pipeline(pipeline_class: type, model: SDModel, sampler: str, **components: Any) -> Any:
    """`diffusers_pipeline` with the diffusers scheduler Sumi builds for the A1111 sampler name `sampler`."""
    scheduler = build_scheduler(sampler, "Automatic", model.scheduler_config).scheduler
    return diffusers_pipeline(pipeline_class, model, scheduler, **components)
