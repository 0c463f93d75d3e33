"""The context object each hook point passes to its hooks. Hooks change the loop by assigning fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from modules.sumi.engine.extensions.hooks import HookPoint
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import JobConditioning


@dataclass
class LoopContext:
    """PRE_LOOP: the starting latents (noise times the scheduler's initial sigma); POST_LOOP: the final
    latents, which are decoded next. Hooks may replace `latents`."""

    latents: torch.Tensor
    timesteps: torch.Tensor  # the scheduler's timesteps, one per model call
    total_steps: int  # model calls of the loop (len(timesteps))
    stopped: bool = False  # POST_LOOP: the loop ended early (interrupt or skip)


@dataclass
class StepContext:
    """PRE_STEP / POST_STEP around one scheduler step (one model call). Hooks may replace `latents`:
    before the step they are what the model sees, after it what the next step starts from."""

    step: int  # model call index, from 0
    total_steps: int  # model calls of the loop
    timestep: torch.Tensor
    latents: torch.Tensor
    denoised: torch.Tensor | None = None  # POST_STEP: the scheduler's x0 estimate, when it gives one


@dataclass
class DenoiserCall:
    """PRE_MODEL_CALL: what one model evaluation sends through the UNet; hooks may replace fields."""

    x: torch.Tensor  # scaled model input for the images [B, C, h, w]
    timestep: torch.Tensor
    step: int  # model call index, from 0
    total_steps: int  # model calls the prompt schedule counts (twice the steps for second-order samplers)
    cfg_scale: float
    conds: list[list[tuple[float, Conditioning]]]  # per image: AND parts (weight, row) at this step
    unconds: list[Conditioning]  # per image
    time_ids: torch.Tensor | None = None  # SDXL size conditioning per image [B, 6]
    empty: Conditioning | None = None  # set: pad cond/uncond of unequal length with empty chunks
    unet_kwargs: dict[str, Any] = field(default_factory=dict)  # given to every UNet forward of this call
    conditioning: JobConditioning | None = None  # the job's schedules `conds`/`unconds` were picked from
    denoiser: Callable[..., torch.Tensor] | None = None  # the denoiser making the call (A1111 shows it)
    sigma: float | None = None  # the call's noise level (k-diffusion sigma; x = a*x0 + a*sigma*eps,
    # a = 1/sqrt(1+sigma^2)), when the loop knows it
    image_conditioning: torch.Tensor | None = None  # per image, extra UNet input channels (9-channel
    # inpainting: mask + masked-image latents; instruct-pix2pix: image latents), A1111's image_cond
    image_cfg_scale: float | None = None  # instruct-pix2pix image guidance (None or 1: plain CFG)
    keep_uncond: bool = False  # the sampler needs the unconditional prediction (DDIM CFG++)
    uncond_output: torch.Tensor | None = None  # set by the guidance when `keep_uncond`: per image
    uncond_time_ids: torch.Tensor | None = None  # the uncond rows' own (SDXL refiner: low aesthetic score)
    rows_x: torch.Tensor | None = None  # set: the UNet input of every row, A1111's x_in layout (the cond
    # rows, one per AND part of each image in order, then one uncond row per image; instruct-pix2pix:
    # then one zero-image uncond row per image); None: each row takes its image's `x`
    skip_uncond: bool = False  # this call runs without the negative prompt (NGMS, skip early CFG)


RowsOnHost = tuple[tuple[int, ...], tuple[bool, ...]]  # (image of each row, is it a cond row) on the host


@dataclass
class UNetBatch:
    """UNET_FORWARD: one UNet forward, with per row the image index and whether it is a cond row.
    Hooks add UNet keyword arguments with `add_unet_kwargs` (several extensions' residuals add up), and
    may replace `context` with a longer one (extra tokens for every row); later hooks see it."""

    x: torch.Tensor
    timestep: torch.Tensor
    context: Conditioning
    time_ids: torch.Tensor | None
    images: torch.Tensor  # [rows] index of the image each row belongs to
    is_cond: torch.Tensor  # [rows] bool
    step: int
    total_steps: int
    unet_kwargs: dict[str, Any] = field(default_factory=dict)
    rows_on_host: RowsOnHost | None = None  # `images` and `is_cond` as tuples when the caller has them

    def row_roles(self) -> RowsOnHost:
        """`images` and `is_cond` as host tuples; read from the tensors (a wait for the GPU) only when the
        caller did not give them."""
        if self.rows_on_host is not None:
            return self.rows_on_host
        return tuple(self.images.tolist()), tuple(self.is_cond.tolist())

    def add_unet_kwargs(self, extra: Mapping[str, Any]) -> None:
        self.unet_kwargs = merge_unet_kwargs(self.unet_kwargs, extra)


@dataclass
class RowOutputs:
    """PRE_CFG: the UNet's prediction for every row of one call, before guidance combines them. Hooks may
    replace `cond`/`uncond`/`image`, or set `output` to the guided prediction [B] (then the built-in
    guidance does not run). With a PRE_CFG hook the uncond rows are always computed (also at CFG 1)."""

    call: DenoiserCall
    cond: torch.Tensor  # [rows] one per AND part of each image, images in order (`owners` says whose)
    uncond: torch.Tensor  # [B] the negative prompt's rows
    owners: torch.Tensor  # [rows] the image index of each cond row
    image: torch.Tensor | None = None  # instruct-pix2pix with image guidance: uncond text with the image;
    # `uncond` is then the uncond text with a zero image
    output: torch.Tensor | None = None


@dataclass
class DenoiserOutput:
    """POST_CFG: the guided noise prediction of one model call; hooks may replace `output`."""

    call: DenoiserCall
    output: torch.Tensor


def merge_unet_kwargs(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Combine two sets of UNet arguments: tensors (and lists of tensors) given by both are added."""
    merged = dict(first)
    for key, value in second.items():
        if key not in merged or merged[key] is None:
            merged[key] = value
        elif isinstance(value, (list, tuple)):
            merged[key] = [a + b for a, b in zip(merged[key], value, strict=True)]
        else:
            merged[key] = merged[key] + value
    return merged


HOOK_CONTEXTS: dict[HookPoint, type] = {
    HookPoint.PRE_LOOP: LoopContext,
    HookPoint.PRE_STEP: StepContext,
    HookPoint.PRE_MODEL_CALL: DenoiserCall,
    HookPoint.UNET_FORWARD: UNetBatch,
    HookPoint.PRE_CFG: RowOutputs,
    HookPoint.POST_CFG: DenoiserOutput,
    HookPoint.POST_STEP: StepContext,
    HookPoint.POST_LOOP: LoopContext,
}
