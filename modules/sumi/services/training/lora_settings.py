"""The settings of the LoRA / LyCORIS training kind (kohya's sd-scripts options by Sumi's names).

`LoraTrainingSettings.from_args(dict)` reads them as the API passes them: an unknown key or a value of
the wrong type is a TrainingError naming the field, never a crash. `learn_rate` takes A1111's schedule
syntax ("1e-4:200, 5e-5"); `unet_lr` / `text_encoder_lr` set the parts' own rates at its start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import find_sampler
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import OPTIMIZERS
from modules.sumi.engine.training.lora import ALGORITHMS
from modules.sumi.engine.training.lora import UNET_TARGETS as ENGINE_UNET_TARGETS
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import PRECISIONS
from modules.sumi.services.training.a1111_settings import MAX_SIDE, at_least, settings_from_args

LORA_ALGOS: tuple[str, ...] = ALGORITHMS
UNET_TARGETS: tuple[str, ...] = ENGINE_UNET_TARGETS
SAVE_PRECISIONS: tuple[str, ...] = ("fp16", "bf16", "fp32")
NAME_FORBIDDEN = set('/\\:*?"<>|\0')


@dataclass(frozen=True, kw_only=True)
class LoraTrainingSettings:
    """One LoRA / LyCORIS training run (the Train tab's LoRA form and `POST /sdapi/v1/train/lora`)."""

    output_name: str = ""
    data_root: str = ""
    algo: str = "lora"
    rank: int = 16
    alpha: float = 8.0
    conv_rank: int = 0
    conv_alpha: float = 1.0
    unet_target: str = "transformer"
    train_text_encoder: bool = True
    learn_rate: str = "1e-4"
    unet_lr: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str = "AdamW"
    batch_size: int = 1
    gradient_step: int = 1
    steps: int = 1000
    training_width: int = 512
    training_height: int = 512
    buckets: bool = False
    shuffle_tags: bool = False
    keep_tokens: int = 0
    tag_drop_out: float = 0.0
    flip: bool = False
    cache_latents: bool = True
    caption_prefix: str = ""
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
    save_precision: str = "fp16"

    def __post_init__(self) -> None:
        self._check_name()
        self._check_counts()
        self._check_sizes()
        self._check_rates()
        self._check_choices()
        self.learn_rate_schedule()

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> LoraTrainingSettings:
        """Settings from request keyword arguments; unknown keys and mistyped values name the field."""
        return settings_from_args(cls, args)

    def learn_rate_schedule(self) -> LearnRateSchedule:
        return LearnRateSchedule.parse(self.learn_rate, self.steps, what="learn_rate")

    def _check_name(self) -> None:
        check_output_name(self.output_name, "LoRA")

    def _check_counts(self) -> None:
        for key, low in (
            ("rank", 1),
            ("conv_rank", 0),
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
        for key in ("alpha", "conv_alpha", "offset_noise"):
            if not getattr(self, key) >= 0:
                raise TrainingError(f"{key} must not be negative")
        for key in ("unet_lr", "text_encoder_lr", "min_snr_gamma"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise TrainingError(f"{key} must be above 0 (or null for the default)")
        if not 0 <= self.tag_drop_out < 1:
            raise TrainingError(
                f"tag_drop_out must be from 0 up to (not including) 1 (got {self.tag_drop_out})"
            )

    def _check_choices(self) -> None:
        for key, value, choices in (
            ("algo", self.algo, LORA_ALGOS),
            ("unet_target", self.unet_target, UNET_TARGETS),
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("mixed_precision", self.mixed_precision, PRECISIONS),
            ("save_precision", self.save_precision, SAVE_PRECISIONS),
        ):
            if value not in choices:
                raise TrainingError(f"{key} {value!r}: expected one of {', '.join(choices)}")
        try:
            find_sampler(self.preview_sampler_name)
        except InvalidRequestError as exc:
            raise TrainingError(f"preview_sampler_name: {exc}") from exc


def check_output_name(name: str, what: str) -> None:
    """`output_name` is a plain file name (no folder, no leading dot, at most 200 bytes)."""
    if not name.strip():
        raise TrainingError(f"output_name: no name given for the {what} file")
    if set(name) & NAME_FORBIDDEN or name.strip() in (".", "..") or name.startswith("."):
        raise TrainingError(f'output_name {name!r}: a file name without / \\ : * ? " < > | or a leading dot')
    if len(name.encode()) > 200:
        raise TrainingError("output_name: too long for a file name (at most 200 bytes)")
