"""The ControlNet trainer: a ControlNet copied from the loaded UNet's encoder, trained with the shared
loop while the UNet and the text encoders stay frozen.

    result = train_controlnet(model, batch_for, ControlNetTrainSettings(loop=LoopSettings(...)))
    save_controlnet(path, result.controlnet, controlnet_metadata(model, settings, info))

`batch_for(step, micro, generator)` gives the micro-batch: captions, latents (cached by the caller) or
pixels in [-1, 1], and the conditioning images [B, C, H, W] in [0, 1] at the pixel size of the latents.
The ControlNet starts as diffusers' `ControlNetModel.from_unet` (the UNet's encoder, a fresh hint
encoder and zero convolutions that start at zero, so step 0 is the plain UNet) and learns the denoising
objective with its residuals added to the frozen UNet's blocks, exactly as Sumi's ControlNet inference
feeds them (`engine.controlnet.control.controlnet_residuals` / `residual_kwargs`).

`proportion_empty_prompts` (diffusers' train_controlnet option) replaces a caption by "" with that
probability, drawn from the step's generator, so the ControlNet also learns to work from the control
image alone. The ControlNet's weights are fp32 (mixed precision is autocast); the model is left exactly
as it was (modes, flags, gradient checkpointing restored; nothing of it is trained).

Resume: `result.resume` holds the ControlNet's state dict, the optimizer state and the step; passed back
as `resume=` the run continues exactly (the loop's randomness depends only on the step).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import ControlNetModel
from torch import Tensor

from modules.sumi.engine.controlnet.control import controlnet_residuals, residual_kwargs
from modules.sumi.engine.extensions import release_residents
from modules.sumi.engine.files import from_config
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.text.encoder import encode_prompts
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings, StepReport, make_optimizer, run_loop
from modules.sumi.engine.training.model_io import (
    UNetExtra,
    autocast,
    batch_latents,
    check_trainable,
    training_guard,
    unet_predictor,
)
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState

RESUME_KIND = "controlnet"


@dataclass(frozen=True)
class ControlNetBatch:
    """One micro-batch: a caption per image, `conditioning` [B, C, H, W] in [0, 1] (the control images at
    the latents' pixel size), and either `latents` [B, C, h, w] (scaled) or `pixels` [B, 3, H, W] in [-1, 1]."""

    captions: Sequence[str]
    conditioning: Tensor
    latents: Tensor | None = None
    pixels: Tensor | None = None


BatchFor = Callable[[int, int, torch.Generator], ControlNetBatch]
"""(step, micro-batch index, generator) -> the micro-batch (use the generator for any random choice)."""


@dataclass(frozen=True)
class ControlNetTrainSettings:
    """How to train (diffusers' train_controlnet options by Sumi's names)."""

    loop: LoopSettings
    objective: ObjectiveSettings = ObjectiveSettings()
    optimizer: str = "AdamW"
    weight_decay: float = 0.0
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (CUDA)
    gradient_checkpointing: bool = False
    latent_sampling: str = "deterministic"  # for pixel batches: "deterministic" | "random" | "once"
    clip_skip: int = 1
    proportion_empty_prompts: float = 0.0
    conditioning_channels: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.proportion_empty_prompts <= 1:
            raise TrainingError(
                f"proportion_empty_prompts must be from 0 to 1 (got {self.proportion_empty_prompts})"
            )
        if self.conditioning_channels < 1:
            raise TrainingError("the control image needs at least 1 channel")


@dataclass
class ControlNetTrainResult:
    """`controlnet`: the trained model (fp32, eval mode, on the model's device); `step`: steps done in
    total; `finished`: all steps ran; `resume`: the state to continue; `losses`: this run's step losses."""

    controlnet: ControlNetModel
    step: int
    finished: bool
    resume: ResumeState
    losses: list[float]


def create_controlnet(model: SDModel, conditioning_channels: int = 3, seed: int = 0) -> ControlNetModel:
    """A ControlNet for `model`: its UNet's encoder copied (diffusers' `from_unet`), fp32, on its device.

    The hint encoder's fresh weights are drawn from `seed` (so two runs with one seed start alike);
    patches a job left resident (LoRA deltas) are taken off first, so the copy is the checkpoint's."""
    release_residents(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        controlnet = ControlNetModel.from_unet(model.unet, conditioning_channels=conditioning_channels)
    torch.nn.Module.to(controlnet, device=model.device, dtype=torch.float32)
    return controlnet.eval().requires_grad_(False)


def settings_digest(model: SDModel, conditioning_channels: int = 3) -> str:
    """What a resume state must match: the family, the UNet's layout and the control image's channels."""
    config = model.unet.config
    layout = {
        "blocks": list(config["block_out_channels"]),
        "layers": config["layers_per_block"],
        "context": config["cross_attention_dim"],
        "hint": conditioning_channels,
    }
    return f"{model.family}:{json.dumps(layout, sort_keys=True)}"


def train_controlnet(
    model: SDModel,
    batch_for: BatchFor,
    settings: ControlNetTrainSettings,
    *,
    controlnet: ControlNetModel | None = None,
    resume: ResumeState | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ControlNetTrainResult:
    """Train a ControlNet for `model` (SD1, SD2 or SDXL) and return it (see the module doc).

    `controlnet` is the one to train (from `create_controlnet`; a caller that samples or saves it from
    `on_step` makes it first); None makes it here, seeded with the loop's seed. `resume` loads its
    weights and the optimizer state."""
    check_trainable(model)
    if controlnet is None:
        controlnet = create_controlnet(model, settings.conditioning_channels, settings.loop.seed)
    _check_controlnet(controlnet, settings)
    digest = settings_digest(model, settings.conditioning_channels)
    start = _resume_into(controlnet, resume, digest)
    controlnet.requires_grad_(True)
    optimizer = make_optimizer(
        settings.optimizer, controlnet.parameters(), weight_decay=settings.weight_decay
    )
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
    objective = DiffusionObjective(model.scheduler_config, model.prediction_type, settings.objective)
    losses: list[float] = []

    def report(step: StepReport) -> None:
        losses.append(step.loss)
        if on_step is not None:
            on_step(step)

    def loss_for(step: int, micro: int, generator: torch.Generator) -> Tensor:
        batch = batch_for(step, micro, generator)
        latents = batch_latents(
            model, batch.captions, batch.latents, batch.pixels, settings.latent_sampling, generator
        )
        height, width = (side * model.vae_scale for side in latents.shape[-2:])
        hint = _hint(batch.conditioning, latents.shape[0], height, width, settings, model.device)
        captions = _drop_captions(batch.captions, settings.proportion_empty_prompts, generator)
        with autocast(model, settings.mixed_precision):
            conditioning = encode_prompts(model.text_encoders, captions, settings.clip_skip)
            extra = _residuals(controlnet, hint, model.dtype)
            predict = unet_predictor(model, conditioning, height, width, extra)
            return objective.loss(predict, latents, generator)

    try:
        with training_guard(model), _train_modes(model, controlnet, settings):
            step = run_loop(
                list(controlnet.parameters()),
                optimizer,
                settings.loop,
                loss_for,
                start_step=start,
                on_step=report,
                should_stop=should_stop,
            )
    finally:
        controlnet.requires_grad_(False)
    tensors = {k: v.detach().to("cpu", copy=True) for k, v in controlnet.state_dict().items()}
    state = ResumeState(step, tensors, optimizer.state_dict(), RESUME_KIND, digest)
    return ControlNetTrainResult(controlnet, step, step >= settings.loop.steps, state, losses)


@contextlib.contextmanager
def sampling_view(controlnet: ControlNetModel, dtype: torch.dtype) -> Iterator[ControlNetModel]:
    """The ControlNet as inference runs it (eval mode, the model's dtype) while the block runs, then back
    to training mode: a sample drawn from `on_step` shows it as trained so far. A dtype other than fp32
    gets a copy (the trained weights stay fp32)."""
    was_training = controlnet.training
    controlnet.eval()
    try:
        if dtype == torch.float32:
            yield controlnet
        else:
            copy = from_config(ControlNetModel, dict(controlnet.config))
            copy.load_state_dict(controlnet.state_dict())
            torch.nn.Module.to(copy, device=controlnet.device, dtype=dtype)
            yield copy.eval().requires_grad_(False)
    finally:
        controlnet.train(was_training)


def _check_controlnet(controlnet: ControlNetModel, settings: ControlNetTrainSettings) -> None:
    channels = int(controlnet.config["conditioning_channels"])
    if channels != settings.conditioning_channels:
        raise TrainingError(
            f"the ControlNet takes {channels}-channel control images, the settings say "
            f"{settings.conditioning_channels}"
        )


def _resume_into(controlnet: ControlNetModel, resume: ResumeState | None, digest: str) -> int:
    if resume is None:
        return 0
    if resume.kind != RESUME_KIND:
        raise TrainingError(f"the resume state is from {resume.kind} training, not ControlNet")
    if resume.settings_digest and resume.settings_digest != digest:
        raise TrainingError(
            "the resume state was saved for another model layout or control image; resume with the "
            "checkpoint and settings it was started with"
        )
    try:
        controlnet.load_state_dict(resume.tensors)
    except RuntimeError as exc:
        raise TrainingError(f"the resume state does not fit this ControlNet: {exc}") from exc
    return resume.step


def _hint(
    conditioning: Tensor,
    count: int,
    height: int,
    width: int,
    settings: ControlNetTrainSettings,
    device: torch.device,
) -> Tensor:
    """The batch's control images, checked against the latents: [B, C, H, W], fp32 on the device."""
    expected = (count, settings.conditioning_channels, height, width)
    if tuple(conditioning.shape) != expected:
        raise TrainingError(
            f"the batch's control images are {list(conditioning.shape)}; the latents need {list(expected)} "
            "(one image per caption, at the latents' pixel size)"
        )
    return conditioning.to(device, torch.float32)


def _drop_captions(captions: Sequence[str], probability: float, generator: torch.Generator) -> list[str]:
    """Each caption replaced by "" with `probability` (one draw per image from the step's generator)."""
    if not probability:
        return list(captions)
    draws = torch.rand(len(captions), generator=generator).tolist()
    return ["" if draw < probability else caption for caption, draw in zip(captions, draws, strict=True)]


def _residuals(controlnet: ControlNetModel, hint: Tensor, unet_dtype: torch.dtype) -> UNetExtra:
    """The UNet's extra arguments: the ControlNet's residuals for the same noisy latents and timesteps.

    The ControlNet computes in fp32 (under autocast: the autocast dtype); its residuals meet the UNet's
    features in the UNet's dtype."""

    def extra(noisy: Tensor, timesteps: Tensor, context: Tensor, added: dict | None) -> dict[str, Any]:
        float_added = None if added is None else {k: v.float() for k, v in added.items()}
        residuals = controlnet_residuals(
            controlnet, noisy.float(), timesteps, context.float(), hint, float_added
        )
        return residual_kwargs([r.to(unet_dtype) for r in residuals])

    return extra


@contextlib.contextmanager
def _train_modes(
    model: SDModel, controlnet: ControlNetModel, settings: ControlNetTrainSettings
) -> Iterator[None]:
    """The ControlNet in training mode, the UNet in eval mode (frozen, but gradients pass through it);
    gradient checkpointing on both when asked (the guard restores the UNet's, the ControlNet's is
    turned off here)."""
    controlnet.train()
    model.unet.eval()
    if settings.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        controlnet.enable_gradient_checkpointing()
    try:
        yield
    finally:
        controlnet.eval()
        if settings.gradient_checkpointing:
            controlnet.disable_gradient_checkpointing()
