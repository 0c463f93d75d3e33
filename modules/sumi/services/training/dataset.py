"""Reading an A1111 training folder: prompt templates, images and their captions, then latents.

As A1111's `PersonalizedBase`: the images are the files directly in `data_root` (not its sub-folders);
each one's caption is the same-stem `.txt`, else the file name (options `dataset_filename_word_regex`
and `dataset_filename_join_string`). Images are resized to the training size (bicubic) unless
`varsize`, which keeps their own size (rounded down to a multiple of 64 so the UNet can take it), or
`buckets` (LoRA), which scales each image to cover its aspect-ratio bucket and crops the centre.
A file that is not a readable image is skipped and named in the run's message; a folder with no image
at all is a TrainingError.

Templates are the `.txt` files under the templates folder (A1111's `--textual-inversion-templates-dir`),
by file name, sub-folders included.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.dataset import (
    DatasetSettings,
    LatentDataset,
    TrainingImage,
    alpha_weight,
    bucket_sizes,
    caption_from_stem,
    nearest_bucket,
)
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import micro_seed
from modules.sumi.engine.training.model_io import encode_distribution
from modules.sumi.services.settings.paths import DataPaths

SIZE_STEP = 64


def confined_setting(paths: DataPaths, value: str, key: str) -> Path:
    """The folder a path setting names, confined to the data folder (or a --gradio-allowed-path one);
    a TrainingError naming `key` when it is empty or outside."""
    if not str(value).strip():
        raise TrainingError(f"{key} is empty")
    try:
        return paths.confine(value)
    except ValueError as exc:
        raise TrainingError(f"{key}: {exc}") from exc


def list_templates(folder: Path) -> dict[str, Path]:
    """Template files by file name (A1111 lists every file of the folder tree; the first name wins)."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            if not name.startswith("."):
                found.setdefault(name, Path(root, name))
    return found


def read_template(folder: Path, filename: str) -> tuple[str, ...]:
    """The prompt lines of template `filename` (blank lines left out)."""
    if not filename:
        raise TrainingError("template_filename: no prompt template file selected")
    path = list_templates(folder).get(filename)
    if path is None:
        names = ", ".join(sorted(list_templates(folder))) or f"none in {folder}"
        raise TrainingError(f"template_filename: prompt template file {filename!r} not found ({names})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"template_filename: {path} cannot be read ({exc})") from exc
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not lines:
        raise TrainingError(f"template_filename: {path} holds no prompt lines")
    return lines


@dataclass(frozen=True)
class FolderSettings:
    data_root: Path
    width: int = 512
    height: int = 512
    varsize: bool = False
    use_weight: bool = False
    word_regex: str = ""
    join_string: str = " "
    buckets: bool = False
    limit: int | None = None  # read at most this many images (in file-name order)


@dataclass
class SourceImage:
    path: Path
    pixels: torch.Tensor  # [3, H, W] in [-1, 1]
    alpha: np.ndarray | None
    caption: str


@dataclass
class FolderContents:
    images: list[SourceImage] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_folder(data_root: Path) -> list[Path]:
    """The candidate files of the dataset folder; TrainingError when it is missing or empty."""
    if not str(data_root):
        raise TrainingError("data_root: the dataset directory is empty")
    if not data_root.is_dir():
        raise TrainingError(f"data_root: the dataset directory {data_root} does not exist")
    files = sorted(p for p in data_root.iterdir() if p.is_file() and not p.name.startswith("."))
    candidates = [p for p in files if p.suffix.lower() != ".txt"]
    if not candidates:
        raise TrainingError(f"data_root: the dataset directory {data_root} holds no images")
    return candidates


def captions_hold(data_root: Path, placeholder: str) -> bool:
    """Whether a caption of the folder's images (its .txt, else the file name) holds `placeholder`. A1111
    fills a template's [filewords] before its [name], so captions may name what is trained."""
    for image in check_folder(data_root):
        try:
            caption = _caption(image, FolderSettings(data_root))
        except ValueError:
            continue
        if placeholder in caption:
            return True
    return False


def read_folder(settings: FolderSettings, interrupted: Callable[[], bool] = lambda: False) -> FolderContents:
    """Every readable image of the folder with its caption; unreadable files are listed in `skipped`."""
    contents = FolderContents()
    for path in check_folder(settings.data_root):
        if interrupted():
            raise TrainingError("interrupted while the dataset was being prepared")
        if settings.limit is not None and len(contents.images) >= settings.limit:
            break
        try:
            contents.images.append(_read_image(path, settings))
        except (OSError, ValueError, Image.DecompressionBombError):
            contents.skipped.append(path.name)
    if not contents.images:
        raise TrainingError(
            f"data_root: no readable image in {settings.data_root} (skipped: {', '.join(contents.skipped)})"
        )
    return contents


def _read_image(path: Path, settings: FolderSettings) -> SourceImage:
    with Image.open(path) as opened:
        opened.load()
        alpha = None
        if settings.use_weight and "A" in opened.getbands():
            alpha = np.asarray(opened.getchannel("A"), dtype=np.uint8)
        image = opened.convert("RGB")
    if settings.buckets:
        image = _cover(image, nearest_bucket(image.size, bucket_sizes(settings.width, settings.height)))
    else:
        size = _varsize(image.size) if settings.varsize else (settings.width, settings.height)
        if image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)
    return SourceImage(path, pixels, alpha, _caption(path, settings))


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled (bicubic) to cover `size`, then its centre cropped to it (kohya's bucketing)."""
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = (max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale)))
    if scaled != image.size:
        image = image.resize(scaled, Image.Resampling.BICUBIC)
    left, top = (scaled[0] - size[0]) // 2, (scaled[1] - size[1]) // 2
    return image.crop((left, top, left + size[0], top + size[1]))


def _varsize(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    return max(SIZE_STEP, w // SIZE_STEP * SIZE_STEP), max(SIZE_STEP, h // SIZE_STEP * SIZE_STEP)


def _caption(path: Path, settings: FolderSettings) -> str:
    text_file = path.with_suffix(".txt")
    if text_file.is_file():
        try:
            return text_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{text_file.name} cannot be read: {exc}") from exc
    return caption_from_stem(path.stem, settings.word_regex, settings.join_string)


def encode_folder(
    model: SDModel,
    contents: FolderContents,
    settings: DatasetSettings,
    use_weight: bool = False,
    interrupted: Callable[[], bool] = lambda: False,
) -> LatentDataset:
    """Latents for every image (one VAE call each) and the dataset over them; with `use_weight` an
    image without an alpha channel weighs every pixel 1."""
    images = []
    for index, source in enumerate(contents.images):
        if interrupted():
            raise TrainingError("interrupted while the dataset was being prepared")
        images.append(_encode(model, source, settings, index, use_weight))
    return LatentDataset(images, settings)


def _encode(
    model: SDModel, source: SourceImage, settings: DatasetSettings, index: int, use_weight: bool
) -> TrainingImage:
    mean, latent_std = _latents(model, source.pixels, settings, index, 0x0DCE)
    flipped = flipped_std = None
    if settings.flip:  # the mirrored image's own latents (a flipped latent is not a flipped image's)
        flipped, flipped_std = _latents(model, source.pixels.flip(-1), settings, index, 0x0DCF)
    weight = None
    if source.alpha is not None:
        weight = alpha_weight(source.alpha, (int(mean.shape[-2]), int(mean.shape[-1])))
    elif use_weight:
        weight = torch.ones(1, *mean.shape[-2:])
    return TrainingImage(
        source.path.name, mean, latent_std, weight, source.caption, None, flipped, flipped_std
    )


def _latents(
    model: SDModel, pixels: torch.Tensor, settings: DatasetSettings, index: int, salt: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(latents, spread for "random" sampling) of one image [3, H, W]."""
    mean, std = encode_distribution(model, pixels.unsqueeze(0))
    mean, std = mean[0], std[0]
    method = settings.latent_sampling_method
    if method == "once":  # one draw, kept for the whole run
        generator = torch.Generator().manual_seed(micro_seed(settings.seed, index, salt))
        return mean + std * torch.randn(mean.shape, generator=generator), None
    return mean, std if method == "random" else None
