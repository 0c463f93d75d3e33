"""What every trainer does with the model: images to latents, a UNet call with the right extra
conditioning, mixed precision, and a guard that leaves the model exactly as generation needs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from modules.sumi.engine.extensions.patches import release_residents
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.objective import Predict

LATENT_SAMPLING = ("once", "deterministic", "random")
PRECISIONS = ("no", "bf16", "fp16")


def check_trainable(model: SDModel) -> None:
    """Refuse what the trainers cannot do yet, before any work is done."""
    if model.is_inpainting:
        raise TrainingError("training on an inpainting checkpoint is not supported; choose its base model")
    if model.family == "SDXL-refiner":
        raise TrainingError("training on the SDXL refiner is not supported; choose an SDXL base model")
    if model.offloaded:
        raise TrainingError("training needs the whole model on one device: turn off --medvram/--lowvram")


@torch.no_grad()
def encode_images(
    model: SDModel,
    pixels: torch.Tensor,
    method: str = "deterministic",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pixels [B, 3, H, W] in [-1, 1] -> scaled latents (fp32) on the model's device.

    `method` is A1111's latent sampling: "deterministic" takes the distribution's mean, "random" (and
    "once", which samples once and keeps it) draw from it with `generator`."""
    if method not in LATENT_SAMPLING:
        raise TrainingError(f"latent sampling {method!r}: expected one of {', '.join(LATENT_SAMPLING)}")
    vae = model.vae
    parameter = next(vae.parameters())
    dist = vae.encode(pixels.to(device=parameter.device, dtype=parameter.dtype)).latent_dist  # pyright: ignore[reportAttributeAccessIssue]
    if method == "deterministic":
        latents = dist.mean
    else:
        noise = torch.randn(dist.mean.shape, generator=generator, dtype=torch.float32).to(dist.mean)
        latents = dist.mean + dist.std * noise
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    return ((latents.float() - shift) * model.vae_scaling_factor).to(model.device)


@torch.no_grad()
def encode_distribution(model: SDModel, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels [B, 3, H, W] in [-1, 1] -> the VAE's latent distribution as scaled (mean, std), fp32 on the
    CPU (a dataset keeps them between steps; "random" latent sampling draws from them each time)."""
    vae = model.vae
    parameter = next(vae.parameters())
    dist = vae.encode(pixels.to(device=parameter.device, dtype=parameter.dtype)).latent_dist  # pyright: ignore[reportAttributeAccessIssue]
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    scale = model.vae_scaling_factor
    return ((dist.mean.float() - shift) * scale).cpu(), (dist.std.float() * scale).cpu()


def batch_latents(
    model: SDModel,
    captions: Sequence[str],
    latents: torch.Tensor | None,
    pixels: torch.Tensor | None,
    method: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """A micro-batch's clean latents (fp32, on the model's device): the cached `latents`, else `pixels`
    in [-1, 1] encoded with `method`; one caption per image."""
    if latents is not None:
        out = latents.to(model.device, torch.float32)
    elif pixels is not None:
        out = encode_images(model, pixels, method, generator)
    else:
        raise TrainingError("a training batch needs latents or pixels")
    if len(captions) != out.shape[0]:
        raise TrainingError(f"a training batch has {out.shape[0]} images and {len(captions)} captions")
    return out


UNetExtra = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, dict | None], dict[str, Any]]
"""(noisy latents, timesteps, text context, SDXL's added conditioning or None) -> extra UNet keyword
arguments for that call (a ControlNet's residuals)."""


def unet_predictor(
    model: SDModel,
    conditioning: Conditioning,
    height: int,
    width: int,
    extra: UNetExtra | None = None,
) -> Predict:
    """The UNet as the objective calls it, with SDXL's pooled text and size conditioning when needed;
    `extra` adds keyword arguments computed from the same inputs (a ControlNet being trained)."""
    added = None
    if model.is_sdxl:
        if conditioning.pooled is None:
            raise TrainingError("SDXL training needs the pooled text embedding")
        rows = conditioning.context.shape[0]
        time_ids = torch.tensor(
            [[height, width, 0, 0, height, width]], device=model.device, dtype=model.dtype
        )
        added = {
            "text_embeds": conditioning.pooled.to(model.device, model.dtype),
            "time_ids": time_ids.repeat(rows, 1),
        }
    context = conditioning.context.to(model.device, model.dtype)

    def predict(noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        kwargs = extra(noisy, timesteps, context, added) if extra is not None else {}
        return model.unet(
            noisy.to(model.dtype),
            timesteps,
            encoder_hidden_states=context,
            added_cond_kwargs=added,
            return_dict=False,
            **kwargs,
        )[0]

    return predict


def autocast(model: SDModel, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass: "no" (the model's dtype), "bf16" (CPU with AMX/AVX512-BF16
    or CUDA) or "fp16" (CUDA only)."""
    if precision not in PRECISIONS:
        raise TrainingError(f"mixed precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "no":
        return contextlib.nullcontext()
    device = model.device.type
    if precision == "fp16" and device != "cuda":
        raise TrainingError("fp16 mixed precision needs CUDA; use bf16 on this device")
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@contextlib.contextmanager
def training_guard(model: SDModel) -> Iterator[None]:
    """Freeze every base weight for the trainer and put it all back afterwards: modes, requires_grad
    flags and gradient checkpointing as they were (the model goes on generating after training).
    Patches a generation job left resident (LoRA deltas) are taken off first: training starts from the
    checkpoint's own weights."""
    release_residents(model)
    modules = model.modules()
    modes = [(m, m.training) for module in modules for m in module.modules()]
    flags = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    checkpointing = model.unet.is_gradient_checkpointing
    for module in modules:
        module.requires_grad_(False)
    try:
        yield
    finally:
        for m, mode in modes:
            m.train(mode)
        for p, flag in flags:
            p.requires_grad_(flag)
            p.grad = None
        if not checkpointing and model.unet.is_gradient_checkpointing:
            model.unet.disable_gradient_checkpointing()
