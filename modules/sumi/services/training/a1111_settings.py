"""The settings of A1111's two training kinds, with A1111 1.10's argument names and UI defaults.

`EmbeddingTrainingSettings` holds `train_embedding`'s arguments, `HypernetworkTrainingSettings`
`train_hypernetwork`'s (both after `id_task`, which is accepted and unused). `from_args(dict)` reads
them as A1111's API passes them (`**args`): an unknown key or a value of the wrong type is a
TrainingError naming the field, never a crash. Sumi's extras (seed, offset noise, min-SNR,
debiased estimation, mixed precision) have defaults that train exactly as A1111 does.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, find_sampler
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import CLIP_MODES
from modules.sumi.engine.training.lr_schedule import LearnRateSchedule
from modules.sumi.engine.training.model_io import LATENT_SAMPLING, PRECISIONS

MAX_SIDE = 4096
S = TypeVar("S", bound="A1111TrainingSettings")


@dataclass(frozen=True, kw_only=True)
class A1111TrainingSettings:
    """The arguments both A1111 trainers take (the UI's defaults)."""

    id_task: str | None = None
    learn_rate: str = "0.005"
    batch_size: int = 1
    gradient_step: int = 1
    data_root: str = ""
    log_directory: str = "textual_inversion"
    training_width: int = 512
    training_height: int = 512
    varsize: bool = False
    steps: int = 100000
    clip_grad_mode: str = "disabled"
    clip_grad_value: str = "0.1"
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    use_weight: bool = False
    create_image_every: int = 500
    template_filename: str = "style_filewords.txt"
    preview_from_txt2img: bool = False
    preview_prompt: str = ""
    preview_negative_prompt: str = ""
    preview_steps: int = 20
    preview_sampler_name: str = "Euler a"
    preview_sampler_index: int | None = None  # before A1111 1.6: an index into the sampler list
    preview_cfg_scale: float = 7.0
    preview_seed: int = -1
    preview_width: int = 512
    preview_height: int = 512
    # Sumi's extras
    seed: int = 0
    offset_noise: float = 0.0
    min_snr_gamma: float | None = None
    debiased_estimation: bool = False
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        self._check_numbers()
        self._check_choices()
        self._check_preview()
        self.learn_rate_schedule()
        self.clip_schedule()

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def save_every(self) -> int:
        raise NotImplementedError

    @classmethod
    def from_args(cls: type[S], args: Mapping[str, Any]) -> S:
        """Settings from A1111's keyword arguments; unknown keys and mistyped values name the field."""
        return settings_from_args(cls, args)

    def learn_rate_schedule(self) -> LearnRateSchedule:
        return LearnRateSchedule.parse(self.learn_rate, self.steps, what="learn_rate")

    def clip_schedule(self) -> LearnRateSchedule | None:
        if self.clip_grad_mode == "disabled":
            return None
        return LearnRateSchedule.parse(self.clip_grad_value, self.steps, what="clip_grad_value")

    def _check_numbers(self) -> None:
        at_least("steps", self.steps, 1)
        at_least("batch_size", self.batch_size, 1)
        at_least("gradient_step", self.gradient_step, 1)
        at_least("create_image_every", self.create_image_every, 0)
        at_least("save_every", self.save_every, 0)
        at_least("preview_steps", self.preview_steps, 1)
        for key in ("training_width", "training_height", "preview_width", "preview_height"):
            value = getattr(self, key)
            if not 64 <= value <= MAX_SIDE or value % 8:
                raise TrainingError(f"{key} must be a multiple of 8 from 64 to {MAX_SIDE} (got {value})")
        if not 0 <= self.tag_drop_out < 1:
            raise TrainingError(
                f"tag_drop_out must be from 0 up to (not including) 1 (got {self.tag_drop_out})"
            )
        if not self.offset_noise >= 0:
            raise TrainingError("offset_noise must not be negative")
        if self.min_snr_gamma is not None and not self.min_snr_gamma > 0:
            raise TrainingError("min_snr_gamma must be above 0 (or null for off)")
        if not self.name.strip():
            raise TrainingError("no name given: choose what to train")
        if (self.save_every or self.create_image_every) and not self.log_directory.strip():
            raise TrainingError("log_directory is empty (needed to save intermediate files and images)")

    def _check_preview(self) -> None:
        if self.preview_sampler_index is not None and not 0 <= self.preview_sampler_index < len(SAMPLERS):
            raise TrainingError(
                f"preview_sampler_index {self.preview_sampler_index}: expected 0 to {len(SAMPLERS) - 1}"
            )
        if self.preview_from_txt2img and self.preview_sampler_index is None:
            try:
                find_sampler(self.preview_sampler_name)
            except InvalidRequestError as exc:
                raise TrainingError(f"preview_sampler_name: {exc}") from exc

    def _check_choices(self) -> None:
        for key, value, choices in (
            ("clip_grad_mode", self.clip_grad_mode, CLIP_MODES),
            ("latent_sampling_method", self.latent_sampling_method, LATENT_SAMPLING),
            ("mixed_precision", self.mixed_precision, PRECISIONS),
        ):
            if value not in choices:
                raise TrainingError(f"{key} {value!r}: expected one of {', '.join(choices)}")


@dataclass(frozen=True, kw_only=True)
class EmbeddingTrainingSettings(A1111TrainingSettings):
    """A1111's `train_embedding` arguments; `embedding_name` is a loaded embedding's name."""

    embedding_name: str = ""
    save_embedding_every: int = 500
    save_image_with_stored_embedding: bool = True

    @property
    def name(self) -> str:
        return self.embedding_name

    @property
    def save_every(self) -> int:
        return self.save_embedding_every


@dataclass(frozen=True, kw_only=True)
class HypernetworkTrainingSettings(A1111TrainingSettings):
    """A1111's `train_hypernetwork` arguments; `hypernetwork_name` is a file's name (A1111's dropdown
    title `name(hash)` is accepted too)."""

    hypernetwork_name: str = ""
    learn_rate: str = "0.00001"
    save_hypernetwork_every: int = 500

    @property
    def name(self) -> str:
        return self.hypernetwork_name

    @property
    def save_every(self) -> int:
        return self.save_hypernetwork_every


T = TypeVar("T")


def settings_from_args(cls: type[T], args: Mapping[str, Any]) -> T:
    """A settings dataclass from request keyword arguments; unknown keys and mistyped values name the
    field (a TrainingError, a 4xx at the API)."""
    if not isinstance(args, Mapping):
        raise TrainingError("the request body must be an object of the training arguments")
    known = [f.name for f in dataclasses.fields(cls)]  # pyright: ignore[reportArgumentType]
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise TrainingError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(known)}"
        )
    hints = typing.get_type_hints(cls)
    values = {key: coerce_field(key, value, hints[key]) for key, value in args.items()}
    return cls(**values)


def at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise TrainingError(f"{key} must be at least {low} (got {value})")


def coerce_field(key: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type; the schedule fields also take numbers (A1111 sends both)."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise TrainingError(f"{key} must not be null")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
        if (
            key in ("learn_rate", "clip_grad_value")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return str(value)
    raise TrainingError(f"{key}: expected {_type_name(base)}{' or null' if optional else ''}, got {value!r}")


def _type_name(base: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(base, str(base))
