"""The fine-tune kind's datasets: the instance images and, for prior preservation, the class images, each
read from its folder and encoded once into a `LatentDataset`.

Captions: an image's `.txt` when it has one. Without one, an instance image is captioned by its file
name (A1111's rule) in a plain fine-tune, and by the instance prompt alone in DreamBooth (camera file
names say nothing); a class image by the class prompt. The instance prompt starts every instance
caption and counts as kept tags, so shuffling and dropout never touch it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.dataset import DatasetSettings, LatentDataset
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.services.training.dataset import FolderContents, FolderSettings, encode_folder, read_folder
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings

CLASS_SEED_SALT = 0xC1A55


@dataclass
class FinetuneData:
    instance: LatentDataset
    instance_contents: FolderContents
    classes: LatentDataset | None = None
    class_contents: FolderContents | None = None

    @property
    def class_count(self) -> int:
        return len(self.classes.images) if self.classes is not None else 0


def prepare_data(
    model: SDModel,
    settings: FinetuneTrainingSettings,
    folders: tuple[FolderSettings, FolderSettings | None],
    interrupted: Callable[[], bool],
) -> FinetuneData:
    """Read and encode the instance folder and (given) the class folder."""
    instance_folder, class_folder = folders
    contents = read_folder(instance_folder, interrupted)
    caption_instances(contents, settings.instance_prompt)
    with torch.no_grad():
        instance = encode_folder(model, contents, instance_settings(settings), False, interrupted)
    if class_folder is None:
        return FinetuneData(instance, contents)
    class_contents = read_folder(class_folder, interrupted)
    for image in class_contents.images:
        image.caption = _own_caption(image.path) or settings.class_prompt.strip()
    try:
        with torch.no_grad():
            classes = encode_folder(model, class_contents, class_settings(settings), False, interrupted)
    except TrainingError as exc:
        raise TrainingError(f"class images: {exc}") from exc
    return FinetuneData(instance, contents, classes, class_contents)


def caption_instances(contents: FolderContents, instance_prompt: str) -> None:
    """Each instance image's caption as trained: the instance prompt, then its own caption."""
    prefix = instance_prompt.strip()
    for image in contents.images:
        caption = _own_caption(image.path) if prefix else image.caption
        image.caption = ", ".join(part for part in (prefix, caption.strip()) if part)


def _own_caption(path: Path) -> str:
    text_file = path.with_suffix(".txt")
    if not text_file.is_file():
        return ""
    try:
        return text_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def prefix_tags(instance_prompt: str) -> int:
    """How many comma-separated tags the instance prompt adds in front of a caption."""
    return len(instance_prompt.split(",")) if instance_prompt.strip() else 0


def instance_settings(settings: FinetuneTrainingSettings) -> DatasetSettings:
    return DatasetSettings(
        settings.output_name,
        ("[filewords]",),
        settings.batch_size,
        settings.gradient_step,
        settings.shuffle_tags,
        settings.tag_drop_out,
        "once" if settings.cache_latents else "random",
        1,
        settings.seed,
        settings.keep_tokens + prefix_tags(settings.instance_prompt),
        settings.flip,
    )


def class_settings(settings: FinetuneTrainingSettings) -> DatasetSettings:
    """Class batches are as large as instance batches (one micro-batch each); their captions stay whole."""
    return DatasetSettings(
        settings.output_name,
        ("[filewords]",),
        settings.batch_size,
        1,
        latent_sampling_method="once" if settings.cache_latents else "random",
        seed=settings.seed ^ CLASS_SEED_SALT,
        flip=settings.flip,
    )
