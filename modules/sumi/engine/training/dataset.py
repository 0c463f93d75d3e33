"""A1111's textual-inversion / hypernetwork dataset as pure functions over already-read images.

The service reads the folder (`modules.sumi.services.training.dataset`); this module turns captions
and template lines into prompts, alpha channels into loss weights, and encoded latents into the
batches of each training step.

Prompts follow A1111's `PersonalizedBase`: a template line is chosen at random, `[filewords]` becomes
the image's caption (its comma-separated tags shuffled and/or dropped when asked), `[name]` the name
of what is trained. Without shuffling or dropout the line is chosen once per image at preparation.

Batches are chosen by step alone (the micro-batch's global index picks an epoch and a position in
that epoch's seeded order), so a run resumed at step s sees exactly the batches the uninterrupted run
saw from step s on. `varsize` keeps images at their own size and batches only images of one size.

LoRA training adds kohya's options: `keep_tokens` (the first N tags stay in place and are never
dropped), `flip` (a seeded coin per use picks the mirrored image's latents, encoded beside the plain
ones) and aspect-ratio buckets (`bucket_sizes`, `nearest_bucket`: each image goes to the bucket
nearest its aspect within the training area; a batch only holds images of one bucket).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import micro_seed
from modules.sumi.engine.training.model_io import LATENT_SAMPLING

LEADING_NUMBERS = re.compile(r"^[-\d]+\s*")
BUCKET_STEP = 64


def bucket_sizes(width: int, height: int, step: int = BUCKET_STEP) -> list[tuple[int, int]]:
    """kohya's bucket resolutions for a `width` x `height` training area: sides in multiples of `step`,
    at most twice the longer training side, as large as the area allows, in both orientations."""
    area, longest = width * height, max(width, height, step) * 2
    sizes: set[tuple[int, int]] = set()
    for w in range(step, longest + 1, step):
        h = min(longest, area // w // step * step)
        if h >= step:
            sizes |= {(w, h), (h, w)}  # both orientations, as kohya
    return sorted(sizes)


def nearest_bucket(size: tuple[int, int], buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is nearest the image's (the larger bucket on a tie)."""
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


def caption_from_stem(stem: str, word_regex: str = "", join_string: str = " ") -> str:
    """A1111's caption for an image without a `.txt`: the file stem without its leading numbers, or the
    words `word_regex` finds in it joined with `join_string` (options dataset_filename_*)."""
    text = LEADING_NUMBERS.sub("", stem)
    if not word_regex:
        return text
    try:
        pattern = re.compile(word_regex)
    except re.error as exc:
        raise TrainingError(
            f"the filename word regex {word_regex!r} is not a valid expression: {exc}"
        ) from exc
    return (join_string or "").join(_as_text(m) for m in pattern.findall(text))


def _as_text(match: str | tuple[str, ...]) -> str:
    return match if isinstance(match, str) else "".join(match)


def compose_prompt(
    line: str,
    name: str,
    filewords: str,
    rng: random.Random,
    shuffle_tags: bool = False,
    tag_drop_out: float = 0.0,
    keep_tokens: int = 0,
) -> str:
    """One template line filled in: `[filewords]` with the (shuffled / thinned) tags, `[name]` with `name`;
    the first `keep_tokens` tags stay first and are never dropped (kohya)."""
    tags = filewords.split(",")
    kept, tags = tags[:keep_tokens], tags[keep_tokens:]
    if tag_drop_out:
        tags = [tag for tag in tags if rng.random() > tag_drop_out]
    if shuffle_tags:
        rng.shuffle(tags)
    return line.replace("[filewords]", ",".join(kept + tags)).replace("[name]", name)


def alpha_weight(alpha: np.ndarray, latent_size: tuple[int, int]) -> torch.Tensor:
    """A PNG alpha channel [H, W] (uint8) as a loss weight [1, h, w] at latent size (h, w): shifted to a
    minimum of 0 and scaled to a mean of 1, so the loss stays comparable to an unweighted one. A fully
    opaque (uniform) channel weighs every pixel 1."""
    from PIL import Image

    h, w = latent_size
    resized = np.asarray(Image.fromarray(alpha).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    weight = torch.from_numpy(resized.copy())
    weight -= weight.min()
    mean = weight.mean()
    if not float(mean) > 0:
        return torch.ones(1, h, w)
    return (weight / mean).unsqueeze(0)


@dataclass
class TrainingImage:
    """One prepared image: its latents (the mean, plus the spread for "random" sampling), loss weight
    and caption; `fixed_prompt` is set when the prompt does not change between uses."""

    name: str
    latents: torch.Tensor  # [C, h, w], scaled
    latent_std: torch.Tensor | None = None
    weight: torch.Tensor | None = None  # [1, h, w]
    filewords: str = ""
    fixed_prompt: str | None = None
    flipped: torch.Tensor | None = None  # the mirrored image's latents (mean), when flipping
    flipped_std: torch.Tensor | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.latents.shape[-2]), int(self.latents.shape[-1])


@dataclass(frozen=True)
class Batch:
    latents: torch.Tensor  # [B, C, h, w]
    weights: torch.Tensor | None  # [B, 1, h, w]
    prompts: list[str]
    names: list[str]


@dataclass(frozen=True)
class DatasetSettings:
    placeholder: str  # what `[name]` becomes
    lines: tuple[str, ...]  # the template's prompt lines
    batch_size: int = 1
    gradient_step: int = 1
    shuffle_tags: bool = False
    tag_drop_out: float = 0.0
    latent_sampling_method: str = "once"
    repeats: int = 1
    seed: int = 0
    keep_tokens: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if not self.lines:
            raise TrainingError("the prompt template has no lines")
        if self.batch_size < 1:
            raise TrainingError("batch_size must be at least 1")
        if self.gradient_step < 1:
            raise TrainingError("gradient_step must be at least 1")
        if not 0 <= self.tag_drop_out < 1:
            raise TrainingError("tag_drop_out must be between 0 and 1 (below 1)")
        if self.latent_sampling_method not in LATENT_SAMPLING:
            raise TrainingError(
                f"latent_sampling_method {self.latent_sampling_method!r}: expected one of "
                f"{', '.join(LATENT_SAMPLING)}"
            )
        if self.repeats < 1:
            raise TrainingError("the number of repeats per epoch must be at least 1")
        if self.keep_tokens < 0:
            raise TrainingError("keep_tokens must not be negative")


class LatentDataset:
    """Prepared images and the batch each (step, micro-batch) trains on."""

    def __init__(self, images: Sequence[TrainingImage], settings: DatasetSettings) -> None:
        if not images:
            raise TrainingError("no images have been found in the dataset")
        self.images = list(images)
        self.settings = settings
        # A1111: the batch never exceeds the dataset, accumulation never exceeds the batches
        self.batch_size = min(settings.batch_size, len(self.images))
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(self.images):
            groups.setdefault(image.size, []).append(index)
        self.groups = list(groups.values())
        full = sum(len(g) * settings.repeats // self.batch_size for g in self.groups)
        if full == 0:
            raise TrainingError(
                f"batch size {self.batch_size} is larger than every group of same-size images; "
                "lower the batch size or turn off variable size"
            )
        self.gradient_step = max(1, min(settings.gradient_step, full))
        self.batches_per_epoch = full - full % self.gradient_step
        self._fix_prompts()

    @property
    def steps_per_epoch(self) -> int:
        return self.batches_per_epoch // self.gradient_step

    @property
    def varies_prompts(self) -> bool:
        return bool(self.settings.shuffle_tags or self.settings.tag_drop_out)

    def epoch_of(self, step: int) -> tuple[int, int]:
        """(epoch, step within it), both 0-based, of the 0-based `step`."""
        return step // self.steps_per_epoch, step % self.steps_per_epoch

    def batch(self, step: int, micro: int, generator: torch.Generator) -> Batch:
        """The batch of micro-batch `micro` of `step`; "random" latents draw from `generator`."""
        index = step * self.gradient_step + micro
        epoch, position = divmod(index, self.batches_per_epoch)
        members = self._epoch_order(epoch)[position]
        rng = random.Random(micro_seed(self.settings.seed, index, 0x7E57))
        images = [self.images[i] for i in members]
        flips = self._flips(index, len(images))
        latents = torch.stack([self._latents(im, generator, f) for im, f in zip(images, flips, strict=True)])
        weights = None
        if all(image.weight is not None for image in images):
            weights = torch.stack(
                [
                    _mirrored(im.weight, f)
                    for im, f in zip(images, flips, strict=True)
                    if im.weight is not None
                ]
            )
        prompts = [self._prompt(image, rng) for image in images]
        return Batch(latents, weights, prompts, [image.name for image in images])

    def _epoch_order(self, epoch: int) -> list[list[int]]:
        rng = random.Random(micro_seed(self.settings.seed, epoch, 0xE90C))
        batches: list[list[int]] = []
        for group in self.groups:
            members = [i for i in group for _ in range(self.settings.repeats)]
            rng.shuffle(members)
            size = self.batch_size
            batches.extend(members[i : i + size] for i in range(0, len(members) - size + 1, size))
        rng.shuffle(batches)
        return batches[: self.batches_per_epoch]

    def _flips(self, index: int, count: int) -> list[bool]:
        """Whether each image of micro-batch `index` is used mirrored (its own seeded coin, so the
        prompts' randomness is the same with and without flipping)."""
        if not self.settings.flip:
            return [False] * count
        rng = random.Random(micro_seed(self.settings.seed, index, 0xF11B))
        return [rng.random() < 0.5 for _ in range(count)]

    def _latents(self, image: TrainingImage, generator: torch.Generator, flip: bool = False) -> torch.Tensor:
        mean, std = image.latents, image.latent_std
        if flip:
            if image.flipped is not None:
                mean, std = image.flipped, image.flipped_std
            else:
                mean, std = _mirrored(mean, True), None if std is None else _mirrored(std, True)
        if std is None:
            return mean
        noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32)
        return mean + std * noise.to(mean)

    def _prompt(self, image: TrainingImage, rng: random.Random) -> str:
        if image.fixed_prompt is not None:
            return image.fixed_prompt
        s = self.settings
        return compose_prompt(
            rng.choice(s.lines),
            s.placeholder,
            image.filewords,
            rng,
            s.shuffle_tags,
            s.tag_drop_out,
            s.keep_tokens,
        )

    def _fix_prompts(self) -> None:
        """A1111 picks the template line once per image unless the tags change between uses."""
        if self.varies_prompts:
            return
        rng = random.Random(micro_seed(self.settings.seed, 0, 0xF1C5))
        for image in self.images:
            line = rng.choice(self.settings.lines)
            image.fixed_prompt = compose_prompt(line, self.settings.placeholder, image.filewords, rng)


def _mirrored(tensor: torch.Tensor, flip: bool) -> torch.Tensor:
    return torch.flip(tensor, dims=[-1]) if flip else tensor
