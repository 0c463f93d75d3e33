"""The settings of the full fine-tune / DreamBooth training kind (diffusers' train_dreambooth and kohya's
fine_tune options by Sumi's names).

`FinetuneTrainingSettings.from_args(dict)` reads them as the API passes them: an unknown key or a value of
the wrong type is a TrainingError naming the field, never a crash. `learn_rate` takes A1111's schedule
syntax ("5e-6:400, 2e-6"); `unet_lr` / `text_encoder_lr` set the parts' own rates at its start.

DreamBooth: `instance_prompt` starts every caption (never shuffled or dropped); prior preservation is on
when `class_data_root` names a folder: its images (Sumi generates the missing ones up to
`num_class_images` from `class_prompt`) are trained beside the instance images with `prior_loss_weight`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import find_sampler
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import OPTIMIZERS
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import PRECISIONS
from modules.sumi.services.training.a1111_settings import MAX_SIDE, at_least, settings_from_args
from modules.sumi.services.training.lora_settings import NAME_FORBIDDEN, SAVE_PRECISIONS


@dataclass(frozen=True, kw_only=True)
class FinetuneTrainingSettings:
    """One fine-tune / DreamBooth run (the Train tab's panel and `POST /sdapi/v1/train/finetune`)."""

    output_name: str = ""
    data_root: str = ""
    instance_prompt: str = ""
    class_data_root: str = ""
    class_prompt: str = ""
    class_negative_prompt: str = ""
    num_class_images: int = 100
    prior_loss_weight: float = 1.0
    class_steps: int = 20
    class_sampler_name: str = "Euler a"
    class_cfg_scale: float = 7.0
    train_text_encoder: bool = False
    learn_rate: str = "5e-6"
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str = "AdamW"
    batch_size: int = 1
    gradient_step: int = 1
    steps: int = 800
    training_width: int = 512
    training_height: int = 512
    buckets: bool = False
    shuffle_tags: bool = False
    keep_tokens: int = 0
    tag_drop_out: float = 0.0
    flip: bool = False
    cache_latents: bool = True
    ema: bool = False
    ema_decay: float = 0.9999
    offset_noise: float = 0.0
    min_snr_gamma: float | None = None
    debiased_estimation: bool = False
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    save_every: int = 0
    create_image_every: int = 0
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    seed: int = 0
    resume: bool = False
    save_state: bool = True
    save_precision: str = "fp16"
    training_comment: str = ""

    def __post_init__(self) -> None:
        self._check_name()
        self._check_counts()
        self._check_sizes()
        self._check_rates()
        self._check_choices()
        self._check_dreambooth()
        self.learn_rate_schedule()

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> FinetuneTrainingSettings:
        """Settings from request keyword arguments; unknown keys and mistyped values name the field."""
        return settings_from_args(cls, args)

    @property
    def prior_preservation(self) -> bool:
        return bool(self.class_data_root.strip())

    def learn_rate_schedule(self) -> LearnRateSchedule:
        return LearnRateSchedule.parse(self.learn_rate, self.steps, what="learn_rate")

    def _check_name(self) -> None:
        name = self.output_name
        if not name.strip():
            raise TrainingError("output_name: no name given for the checkpoint file")
        if set(name) & NAME_FORBIDDEN or name.strip() in (".", "..") or name.startswith("."):
            raise TrainingError(
                f'output_name {name!r}: a file name without / \\ : * ? " < > | or a leading dot'
            )
        if len(name.encode()) > 200:
            raise TrainingError("output_name: too long for a file name (at most 200 bytes)")

    def _check_counts(self) -> None:
        for key, low in (
            ("num_class_images", 1),
            ("class_steps", 1),
            ("batch_size", 1),
            ("gradient_step", 1),
            ("steps", 1),
            ("keep_tokens", 0),
            ("save_every", 0),
            ("create_image_every", 0),
            ("preview_steps", 1),
        ):
            at_least(key, getattr(self, key), low)

    def _check_sizes(self) -> None:
        for key in ("training_width", "training_height"):
            value = getattr(self, key)
            if not 64 <= value <= MAX_SIDE or value % 8:
                raise TrainingError(f"{key} must be a multiple of 8 from 64 to {MAX_SIDE} (got {value})")

    def _check_rates(self) -> None:
        for key in ("offset_noise", "prior_loss_weight"):
            if not getattr(self, key) >= 0:
                raise TrainingError(f"{key} must not be negative")
        for key in ("unet_lr", "text_encoder_lr", "min_snr_gamma"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise TrainingError(f"{key} must be above 0 (or null for the default)")
        if self.text_encoder_lr is not None and not self.train_text_encoder:
            raise TrainingError("text_encoder_lr is set but train_text_encoder is off")
        if not 0 < self.ema_decay < 1:
            raise TrainingError(f"ema_decay must be between 0 and 1 (got {self.ema_decay})")
        if not 0 <= self.tag_drop_out < 1:
            raise TrainingError(
                f"tag_drop_out must be from 0 up to (not including) 1 (got {self.tag_drop_out})"
            )

    def _check_choices(self) -> None:
        for key, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("mixed_precision", self.mixed_precision, PRECISIONS),
            ("save_precision", self.save_precision, SAVE_PRECISIONS),
        ):
            if value not in choices:
                raise TrainingError(f"{key} {value!r}: expected one of {', '.join(choices)}")
        for key in ("preview_sampler_name", "class_sampler_name"):
            try:
                find_sampler(getattr(self, key))
            except InvalidRequestError as exc:
                raise TrainingError(f"{key}: {exc}") from exc

    def _check_dreambooth(self) -> None:
        if self.prior_preservation and not self.instance_prompt.strip():
            raise TrainingError(
                "instance_prompt: prior preservation (a class_data_root) needs an instance prompt that "
                "names the subject, e.g. 'a photo of sks dog'"
            )
        for key in ("class_prompt", "class_negative_prompt"):
            if getattr(self, key).strip() and not self.prior_preservation:
                raise TrainingError(
                    f"{key} is set but class_data_root is empty: name the folder of class images "
                    "(Sumi fills it) to train with prior preservation"
                )
