"""The LoRA / LyCORIS trainer: adapters hooked into the live model, trained with the shared loop.

    result = train_lora(model, batch_for, LoraSettings(algo="lora", rank=8), LoraTrainSettings(loop=...))
    save_lora(path, result.tensors, lora_metadata(model, lora_settings, train_settings, info))

`batch_for(step, micro, generator)` gives the micro-batch: captions plus latents (cached by the
caller) or pixels in [-1, 1] (encoded here with `latent_sampling`). The UNet and the text encoders
are frozen; only the adapters learn, and the model is left exactly as it was (the hooks go, modes,
flags and gradient checkpointing are restored). `on_step` runs while the adapters are hooked in, so
sample images drawn from it show the network as trained so far.

Resume: `result.resume` (a `ResumeState`, saved with `engine.training.resume.save_resume_state`) holds
the adapter tensors, the optimizer state and the step; passing it back as `resume=` continues the run
exactly (the loop's randomness depends only on the step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.text.encoder import Conditioning, encode_prompts
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings, StepReport, make_optimizer, run_loop
from modules.sumi.engine.training.model_io import (
    autocast,
    batch_latents,
    check_trainable,
    training_guard,
    unet_predictor,
)
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState

from .network import LoraSettings, TrainableNetwork, create_network

RESUME_KIND = "lora"


@dataclass(frozen=True)
class TrainingBatch:
    """One micro-batch: a caption per image, and either `latents` [B, C, h, w] (scaled, as the UNet
    sees them) or `pixels` [B, 3, H, W] in [-1, 1]. `loss_weight` [B, 1, h, w] weighs latent pixels."""

    captions: Sequence[str]
    latents: Tensor | None = None
    pixels: Tensor | None = None
    loss_weight: Tensor | None = None


BatchFor = Callable[[int, int, torch.Generator], TrainingBatch]
"""(step, micro-batch index, generator) -> the micro-batch (use the generator for any random choice)."""


@dataclass(frozen=True)
class LoraTrainSettings:
    """How to train. `unet_lr` / `text_encoder_lr` are the parts' rates at the schedule's first rate:
    each follows the schedule's shape scaled to its own rate (kohya scales each group's base rate the
    same way); None takes the schedule as it is."""

    loop: LoopSettings
    objective: ObjectiveSettings = ObjectiveSettings()
    optimizer: str = "AdamW"
    weight_decay: float = 0.0
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (CUDA)
    gradient_checkpointing: bool = False
    latent_sampling: str = "deterministic"  # for pixel batches: "deterministic" | "random" | "once"
    clip_skip: int = 1

    def __post_init__(self) -> None:
        for name in ("unet_lr", "text_encoder_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise TrainingError(f"the {name.replace('_', ' ')} must be above 0 (or unset)")


@dataclass
class LoraTrainResult:
    """`tensors`: the network in kohya's layout (fp32, CPU); `step`: steps done in total; `finished`:
    all steps ran (False when stopped or the schedule ended early); `resume`: the state to continue."""

    tensors: dict[str, Tensor]
    step: int
    finished: bool
    resume: ResumeState
    losses: list[float]


def settings_digest(model: SDModel, settings: LoraSettings) -> str:
    return f"{model.family}:{settings.digest()}"


def train_lora(
    model: SDModel,
    batch_for: BatchFor,
    network_settings: LoraSettings,
    settings: LoraTrainSettings,
    *,
    resume: ResumeState | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[TrainableNetwork], None] | None = None,
) -> LoraTrainResult:
    """Train a LoRA / LyCORIS network on `model` (SD1, SD2 or SDXL) and return it (see the module doc).
    `on_start` gets the network before the first step (to save intermediate files from `on_step`)."""
    check_trainable(model)
    network = create_network(model, network_settings)
    digest = settings_digest(model, network_settings)
    start = _resume_into(network, resume, digest)
    if on_start is not None:
        on_start(network)
    optimizer = _optimizer(network, settings)
    if resume is not None:
        optimizer.load_state_dict(resume.optimizer)
    objective = DiffusionObjective(model.scheduler_config, model.prediction_type, settings.objective)
    train_te = bool(network.parameters_of(text_encoder=True))
    losses: list[float] = []

    def report(step: StepReport) -> None:
        losses.append(step.loss)
        if on_step is not None:
            on_step(step)

    def loss_for(step: int, micro: int, generator: torch.Generator) -> Tensor:
        batch = batch_for(step, micro, generator)
        latents = _latents(model, batch, settings.latent_sampling, generator)
        height, width = (side * model.vae_scale for side in latents.shape[-2:])
        with autocast(model, settings.mixed_precision):
            conditioning = _encode(model, batch.captions, train_te, settings.clip_skip)
            predict = unet_predictor(model, conditioning, height, width)
            return objective.loss(predict, latents, generator, batch.loss_weight)

    with training_guard(model), _train_modes(model, network, settings, train_te), network.applied():
        step = run_loop(
            list(network.parameters()),
            optimizer,
            settings.loop,
            loss_for,
            start_step=start,
            on_step=report,
            should_stop=should_stop,
        )
    tensors = network.file_state_dict()
    state = ResumeState(step, tensors, optimizer.state_dict(), RESUME_KIND, digest)
    return LoraTrainResult(tensors, step, step >= settings.loop.steps, state, losses)


def _resume_into(network: TrainableNetwork, resume: ResumeState | None, digest: str) -> int:
    if resume is None:
        return 0
    if resume.kind != RESUME_KIND:
        raise TrainingError(f"the resume state is from {resume.kind} training, not LoRA")
    if resume.settings_digest and resume.settings_digest != digest:
        raise TrainingError(
            "the resume state was saved with other network settings or for another model family; "
            "resume with the settings it was started with"
        )
    network.load_file_state_dict(resume.tensors)
    return resume.step


def _optimizer(network: TrainableNetwork, settings: LoraTrainSettings) -> torch.optim.Optimizer:
    """One parameter group per trained part, each with its `lr_scale` relative to the schedule."""
    first_rate = settings.loop.learn_rate.pieces[0][0]
    groups = []
    for text_encoder, rate in ((False, settings.unet_lr), (True, settings.text_encoder_lr)):
        params = network.parameters_of(text_encoder)
        if params:
            groups.append((params, 1.0 if rate is None else rate / first_rate))
    (params, scale), *rest = groups
    optimizer = make_optimizer(settings.optimizer, params, weight_decay=settings.weight_decay)
    optimizer.param_groups[0]["lr_scale"] = scale
    for params, scale in rest:
        optimizer.add_param_group({"params": params, "lr_scale": scale})
    return optimizer


@contextlib.contextmanager
def _train_modes(
    model: SDModel, network: TrainableNetwork, settings: LoraTrainSettings, train_te: bool
) -> Iterator[None]:
    """Training mode for the trained parts and the adapters; gradient checkpointing when asked (the
    guard restores the UNet's; the text encoders' is turned off again here)."""
    network.train()
    model.unet.train(bool(network.parameters_of(text_encoder=False)))
    encoders = [spec.model for spec in model.text_encoders] if train_te else []
    switched = []
    for encoder in encoders:
        encoder.train()
    if settings.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        for encoder in encoders:
            if not encoder.is_gradient_checkpointing:
                encoder.gradient_checkpointing_enable()
                switched.append(encoder)
    try:
        yield
    finally:
        network.eval()
        for encoder in switched:
            encoder.gradient_checkpointing_disable()


def _latents(model: SDModel, batch: TrainingBatch, method: str, generator: torch.Generator) -> Tensor:
    return batch_latents(model, batch.captions, batch.latents, batch.pixels, method, generator)


def _encode(model: SDModel, captions: Sequence[str], train_te: bool, clip_skip: int) -> Conditioning:
    with torch.set_grad_enabled(train_te):
        return encode_prompts(model.text_encoders, list(captions), clip_skip, grad=train_te)
