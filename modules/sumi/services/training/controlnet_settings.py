"""The settings of the ControlNet training kind (diffusers' train_controlnet / kohya's options by Sumi's
names).

The control images come from one of two places:
- a conditioning folder of ready-made control images with the training images' file stems
  (`conditioning_data_root`, default `<data_root>/conditioning`, as kohya's conditioning_data_dir);
- `preprocessor`: one of Sumi's model-free ControlNet preprocessors ("canny" with its thresholds,
  "scribble_xdog", "lineart_standard", ...) makes them from the training images.

`ControlNetTrainingSettings.from_args(dict)` reads them as the API passes them: an unknown key or a value
of the wrong type is a TrainingError naming the field. `learn_rate` takes A1111's schedule syntax.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modules.sumi.engine.controlnet.preprocessors import Preprocessor, get_preprocessor, list_preprocessors
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import find_sampler
from modules.sumi.engine.training.controlnet import SAVE_DTYPES
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import OPTIMIZERS
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import PRECISIONS
from modules.sumi.services.training.a1111_settings import MAX_SIDE, at_least, settings_from_args
from modules.sumi.services.training.lora_settings import check_output_name

SAVE_PRECISIONS: tuple[str, ...] = tuple(SAVE_DTYPES)


@dataclass(frozen=True, kw_only=True)
class ControlNetTrainingSettings:
    """One ControlNet training run (the Train tab's ControlNet form and `POST /sdapi/v1/train/controlnet`)."""

    output_name: str = ""
    data_root: str = ""
    conditioning_data_root: str = ""  # "": <data_root>/conditioning (unless a preprocessor makes them)
    preprocessor: str = ""  # "": read the conditioning folder
    preprocessor_resolution: int = -1  # -1: the training size's shorter side
    preprocessor_threshold_a: float = -1.0  # -1: the preprocessor's default (as a ControlNet unit)
    preprocessor_threshold_b: float = -1.0
    learn_rate: str = "1e-5"
    optimizer: str = "AdamW"
    batch_size: int = 1
    gradient_step: int = 1
    steps: int = 5000
    training_width: int = 512
    training_height: int = 512
    cache_latents: bool = True
    proportion_empty_prompts: float = 0.0
    offset_noise: float = 0.0
    min_snr_gamma: float | None = None
    debiased_estimation: bool = False
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    save_every: int = 0
    create_image_every: int = 0
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_conditioning: str = ""  # "": the first training image's control image
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    seed: int = 0
    resume: bool = False
    save_precision: str = "fp16"

    def __post_init__(self) -> None:
        check_output_name(self.output_name, "ControlNet")
        self._check_numbers()
        self._check_choices()
        self._check_conditioning()
        self.learn_rate_schedule()

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ControlNetTrainingSettings:
        """Settings from request keyword arguments; unknown keys and mistyped values name the field."""
        return settings_from_args(cls, args)

    def learn_rate_schedule(self) -> LearnRateSchedule:
        return LearnRateSchedule.parse(self.learn_rate, self.steps, what="learn_rate")

    def preprocessor_spec(self) -> Preprocessor | None:
        """The preprocessor that makes the control images, None when they are read from a folder."""
        if not self.preprocessor.strip():
            return None
        try:
            found = get_preprocessor(self.preprocessor)
        except InvalidRequestError as exc:
            raise TrainingError(f"preprocessor: {exc}") from exc
        if not found.model_free or found.detect is None or found.uses_mask or found.reference:
            raise TrainingError(
                f"preprocessor {self.preprocessor!r} needs a network or a mask; training can use the "
                f"model-free ones: {', '.join(model_free_preprocessors())}"
            )
        return found

    def conditioning_source(self) -> str:
        """How the control images are made, as the file's metadata and the run's message say it."""
        spec = self.preprocessor_spec()
        if spec is None:
            return f"folder {self.conditioning_data_root or self.data_root.rstrip('/') + '/conditioning'}"
        args = spec.resolve(
            self.preprocessor_resolution, self.preprocessor_threshold_a, self.preprocessor_threshold_b
        )
        used = [args.threshold_a] if spec.threshold_a else []
        used += [args.threshold_b] if spec.threshold_b else []
        numbers = ", ".join(f"{v:g}" for v in used)
        return f"{spec.name} ({numbers})" if numbers else spec.name

    def _check_numbers(self) -> None:
        for key, low in (
            ("batch_size", 1),
            ("gradient_step", 1),
            ("steps", 1),
            ("save_every", 0),
            ("create_image_every", 0),
            ("preview_steps", 1),
        ):
            at_least(key, getattr(self, key), low)
        for key in ("training_width", "training_height"):
            value = getattr(self, key)
            if not 64 <= value <= MAX_SIDE or value % 8:
                raise TrainingError(f"{key} must be a multiple of 8 from 64 to {MAX_SIDE} (got {value})")
        if not 0 <= self.proportion_empty_prompts <= 1:
            raise TrainingError(
                f"proportion_empty_prompts must be from 0 to 1 (got {self.proportion_empty_prompts})"
            )
        if not self.offset_noise >= 0:
            raise TrainingError("offset_noise must not be negative")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise TrainingError("min_snr_gamma must be above 0 (or null for off)")

    def _check_choices(self) -> None:
        for key, value, choices in (
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

    def _check_conditioning(self) -> None:
        spec = self.preprocessor_spec()
        if spec is not None and self.conditioning_data_root.strip():
            raise TrainingError(
                "conditioning_data_root and preprocessor: choose one (a folder of control images, or a "
                "preprocessor that makes them from the training images)"
            )
        if self.preprocessor_resolution != -1 and not 64 <= self.preprocessor_resolution <= MAX_SIDE:
            raise TrainingError(
                f"preprocessor_resolution must be -1 (the training size) or from 64 to {MAX_SIDE} "
                f"(got {self.preprocessor_resolution})"
            )


def model_free_preprocessors() -> list[str]:
    """The preprocessors training can run: no network, no mask (names as the API takes them)."""
    return [
        p.name
        for p in list_preprocessors()
        if p.model_free and p.detect is not None and not p.uses_mask and not p.reference
    ]
