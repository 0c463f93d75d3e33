"""The full fine-tune / DreamBooth trainer: the UNet (and optionally the text encoders) trained in place
with the shared loop.

    result = train_finetune(model, batch_for, FinetuneTrainSettings(loop=LoopSettings(...)))
    save_finetuned(path, model, finetune_metadata(model, settings, info))

`batch_for(step, micro, generator)` gives the micro-batch: a `TrainingBatch` (captions plus cached
latents or pixels in [-1, 1]), or a `FinetuneBatch` that adds DreamBooth's class images; then
loss = instance loss + prior_loss_weight * class loss (diffusers' train_dreambooth). Nothing here
assumes pretrained weights: a freshly initialised model trains the same way.

The model is changed in place: the trained parts are upcast to fp32 (master weights) and end holding
the trained weights, the EMA weights when EMA is on. Modes, requires_grad flags and gradient
checkpointing are put back as they were; a caller that goes on generating with the model restores
its weights itself (`engine.training.finetune.snapshot`). `on_start` gets the `FinetuneSession` before
the first step, whose `for_sampling()` shows the model as it would be saved now (samples, files).

Resume: `result.resume` holds the trained parts' weights, the optimizer, the EMA and the fp16 grad
scaler and the step; passing it back as `resume=` continues exactly where the run stopped.
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
from modules.sumi.engine.training.lora.trainer import TrainingBatch
from modules.sumi.engine.training.model_io import (
    autocast,
    batch_latents,
    check_trainable,
    training_guard,
    unet_predictor,
)
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState

from .parts import TrainedParts, WeightAverage

RESUME_KIND = "finetune"


@dataclass(frozen=True)
class FinetuneBatch:
    """One micro-batch of DreamBooth: the instance images and the class images of prior preservation."""

    instance: TrainingBatch
    prior: TrainingBatch | None = None


BatchFor = Callable[[int, int, torch.Generator], TrainingBatch | FinetuneBatch]
"""(step, micro-batch index, generator) -> the micro-batch (use the generator for any random choice)."""


@dataclass(frozen=True)
class FinetuneTrainSettings:
    """How to train. `unet_lr` / `text_encoder_lr` are the parts' rates at the schedule's first rate (each
    follows the schedule's shape scaled to its own rate); None takes the schedule as it is.
    `ema_decay` None trains without EMA."""

    loop: LoopSettings
    objective: ObjectiveSettings = ObjectiveSettings()
    optimizer: str = "AdamW"
    weight_decay: float = 0.0
    unet_lr: float | None = None
    train_text_encoder: bool = False
    text_encoder_lr: float | None = None
    ema_decay: float | None = None
    prior_loss_weight: float = 1.0
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (CUDA, with a grad scaler)
    gradient_checkpointing: bool = False
    latent_sampling: str = "deterministic"  # for pixel batches: "deterministic" | "random" | "once"
    clip_skip: int = 1

    def __post_init__(self) -> None:
        for name in ("unet_lr", "text_encoder_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise TrainingError(f"the {name.replace('_', ' ')} must be above 0 (or unset)")
        if self.text_encoder_lr is not None and not self.train_text_encoder:
            raise TrainingError("a text encoder learning rate is set but the text encoder is not trained")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise TrainingError(f"the EMA decay must be between 0 and 1 (got {self.ema_decay})")
        if not self.prior_loss_weight >= 0:
            raise TrainingError("the prior loss weight must not be negative")
        if not self.weight_decay >= 0:
            raise TrainingError("the weight decay must not be negative")


@dataclass
class FinetuneTrainResult:
    """`step`: steps done in total; `finished`: all steps ran (False when stopped or the schedule ended
    early); `resume`: the state to continue; `losses`: one per step of this call."""

    step: int
    finished: bool
    resume: ResumeState
    losses: list[float]


class FinetuneSession:
    """The run as `on_start` sees it: the trained parts and their EMA."""

    def __init__(self, parts: TrainedParts, average: WeightAverage | None) -> None:
        self.parts = parts
        self.average = average

    @contextlib.contextmanager
    def for_sampling(self) -> Iterator[None]:
        """The model as it would be saved now (EMA weights when EMA is on), in eval mode, for the block."""
        modes = [(m, m.training) for module in self.parts.modules.values() for m in module.modules()]
        swap = self.average.swapped_in() if self.average is not None else contextlib.nullcontext()
        try:
            for module in self.parts.modules.values():
                module.eval()
            with swap:
                yield
        finally:
            for m, mode in modes:
                m.train(mode)


def settings_digest(model: SDModel, settings: FinetuneTrainSettings) -> str:
    parts = "unet+te" if settings.train_text_encoder else "unet"
    ema = "ema" if settings.ema_decay is not None else "no-ema"
    return f"{model.family}:{parts}:{ema}:{settings.optimizer}"


def train_finetune(
    model: SDModel,
    batch_for: BatchFor,
    settings: FinetuneTrainSettings,
    *,
    resume: ResumeState | None = None,
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[FinetuneSession], None] | None = None,
) -> FinetuneTrainResult:
    """Fine-tune `model` (SD1, SD2 or SDXL) in place on `batch_for`'s batches (see the module doc)."""
    check_trainable(model)
    autocast(model, settings.mixed_precision)  # a precision this device cannot do fails before any work
    parts = TrainedParts(model, settings.train_text_encoder)
    digest = settings_digest(model, settings)
    loss_for = DreamBoothLoss(model, batch_for, settings)
    losses: list[float] = []
    with training_guard(model), _train_modes(model, parts, settings):
        parts.make_trainable()
        decay = settings.ema_decay
        average = WeightAverage(parts.parameters(), decay) if decay is not None else None
        optimizer = _optimizer(parts, settings)
        scaler = torch.amp.GradScaler("cuda") if settings.mixed_precision == "fp16" else None
        start = _resume_into(parts, optimizer, average, scaler, resume, digest)
        if on_start is not None:
            on_start(FinetuneSession(parts, average))

        def report(step: StepReport) -> None:
            if average is not None:
                average.update()  # before on_step, so its samples and files see this step's average
            losses.append(step.loss)
            if on_step is not None:
                on_step(step)

        step = run_loop(
            parts.parameters(),
            optimizer,
            settings.loop,
            loss_for,
            start_step=start,
            on_step=report,
            should_stop=should_stop,
            scaler=scaler,
        )
        extra = _extra_state(average, scaler)
        state = ResumeState(step, parts.state_tensors(), optimizer.state_dict(), RESUME_KIND, digest, extra)
        if average is not None:
            average.copy_to_model()
    return FinetuneTrainResult(step, step >= settings.loop.steps, state, losses)


class DreamBoothLoss:
    """The loss of one micro-batch: instance loss + prior_loss_weight * class loss (the class part only
    when the batch has class images and the weight is above 0)."""

    def __init__(self, model: SDModel, batch_for: BatchFor, settings: FinetuneTrainSettings) -> None:
        self.model, self.batch_for, self.settings = model, batch_for, settings
        self.objective = DiffusionObjective(model.scheduler_config, model.prediction_type, settings.objective)

    def __call__(self, step: int, micro: int, generator: torch.Generator) -> Tensor:
        batch = self.batch_for(step, micro, generator)
        if isinstance(batch, TrainingBatch):
            batch = FinetuneBatch(batch)
        loss = self.batch_loss(batch.instance, generator)
        weight = self.settings.prior_loss_weight
        if batch.prior is not None and weight > 0:
            loss = loss + weight * self.batch_loss(batch.prior, generator)
        return loss

    def batch_loss(self, batch: TrainingBatch, generator: torch.Generator) -> Tensor:
        model, settings = self.model, self.settings
        latents = batch_latents(
            model, batch.captions, batch.latents, batch.pixels, settings.latent_sampling, generator
        )
        height, width = (side * model.vae_scale for side in latents.shape[-2:])
        with autocast(model, settings.mixed_precision):
            conditioning = _encode(model, batch.captions, settings.train_text_encoder, settings.clip_skip)
            predict = unet_predictor(model, conditioning, height, width)
            return self.objective.loss(predict, latents, generator, batch.loss_weight)


def _extra_state(average: WeightAverage | None, scaler: torch.amp.GradScaler | None) -> dict:
    extra: dict = {}
    if average is not None:
        extra["ema"] = average.state_dict()
    if scaler is not None:
        extra["scaler"] = scaler.state_dict()
    return extra


def _resume_into(
    parts: TrainedParts,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage | None,
    scaler: torch.amp.GradScaler | None,
    resume: ResumeState | None,
    digest: str,
) -> int:
    if resume is None:
        return 0
    if resume.kind != RESUME_KIND:
        raise TrainingError(f"the resume state is from {resume.kind} training, not a fine-tune")
    if resume.settings_digest and resume.settings_digest != digest:
        raise TrainingError(
            f"the resume state was saved for {resume.settings_digest} and this run is {digest} (model "
            "family, trained parts, EMA, optimizer): resume with the settings it was started with"
        )
    parts.load_state_tensors(resume.tensors)
    try:
        optimizer.load_state_dict(resume.optimizer)
    except (ValueError, KeyError) as exc:
        raise TrainingError(f"the resume state's optimizer does not fit this run: {exc}") from exc
    if average is not None:
        average.load_state_dict(resume.extra.get("ema") or {})
    if scaler is not None and resume.extra.get("scaler"):
        scaler.load_state_dict(resume.extra["scaler"])
    return resume.step


def _optimizer(parts: TrainedParts, settings: FinetuneTrainSettings) -> torch.optim.Optimizer:
    """One parameter group per trained part (UNet, text encoders), each with its `lr_scale`."""
    first_rate = settings.loop.learn_rate.pieces[0][0]
    unet_scale = 1.0 if settings.unet_lr is None else settings.unet_lr / first_rate
    optimizer = make_optimizer(
        settings.optimizer, parts.parameters(text_encoder=False), weight_decay=settings.weight_decay
    )
    optimizer.param_groups[0]["lr_scale"] = unet_scale
    encoders = parts.parameters(text_encoder=True)
    if encoders:
        rate = settings.text_encoder_lr
        optimizer.add_param_group(
            {"params": encoders, "lr_scale": 1.0 if rate is None else rate / first_rate}
        )
    return optimizer


@contextlib.contextmanager
def _train_modes(model: SDModel, parts: TrainedParts, settings: FinetuneTrainSettings) -> Iterator[None]:
    """Training mode for the trained parts; gradient checkpointing when asked (the guard turns the
    UNet's off again; the text encoders' is turned off here)."""
    switched = []
    for module in parts.modules.values():
        module.train()
    if settings.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
        encoders = [spec.model for spec in model.text_encoders] if settings.train_text_encoder else []
        for encoder in encoders:
            if not encoder.is_gradient_checkpointing:
                encoder.gradient_checkpointing_enable()
                switched.append(encoder)
    try:
        yield
    finally:
        for encoder in switched:
            encoder.gradient_checkpointing_disable()


def _encode(model: SDModel, captions: Sequence[str], train_te: bool, clip_skip: int) -> Conditioning:
    with torch.set_grad_enabled(train_te):
        return encode_prompts(model.text_encoders, list(captions), clip_skip, grad=train_te)
