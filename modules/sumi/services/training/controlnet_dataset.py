"""The control images of a ControlNet training run, one per training image, at the training size.

Either read from a conditioning folder (kohya's conditioning_data_dir: `<data_root>/conditioning` unless
`conditioning_data_root` names another folder, both confined to the data folder), where each training
image's control image has the same file stem (`001.png` <- `conditioning/001.png`, any image type; the
training image's own extension wins when both exist), or made from the training images (already at the
training size) by one of Sumi's model-free preprocessors. A training image without its control image is
a TrainingError naming both; control images without a training image are not used.

Control images are stretched to the training size as the training images are (bilinear, as diffusers'
train_controlnet resizes its conditioning images), and kept as uint8 until a batch needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.controlnet.preprocessors import Preprocessor
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.controlnet_settings import ControlNetTrainingSettings
from modules.sumi.services.training.dataset import FolderContents, confined_setting

CONDITIONING_FOLDER = "conditioning"
ControlMaps = dict[str, np.ndarray]
"""Training image file name -> its control image, HxWx3 uint8 at the training size."""


def conditioning_folder(paths: DataPaths, settings: ControlNetTrainingSettings) -> Path:
    """The folder of ready-made control images (confined to the data folder)."""
    if settings.conditioning_data_root.strip():
        return confined_setting(paths, settings.conditioning_data_root, "conditioning_data_root")
    data_root = confined_setting(paths, settings.data_root, "data_root")
    return confined_setting(paths, str(data_root / CONDITIONING_FOLDER), "conditioning_data_root")


def check_conditioning_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise TrainingError(
            f"conditioning_data_root: the conditioning directory {folder} does not exist; put a control "
            "image for each training image there (same file name), or choose a preprocessor"
        )


def check_pairs(images: Sequence[Path], folder: Path) -> None:
    """Before anything is queued: every training image file (by its image extension) has a control image
    of the same stem in `folder`."""
    check_conditioning_folder(folder)
    stems = {p.stem for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".txt"}
    known = set(Image.registered_extensions())
    for image in images:
        if image.suffix.lower() in known and image.stem not in stems:
            raise TrainingError(_missing(image, folder))


def _missing(image: Path, folder: Path) -> str:
    return (
        f"conditioning_data_root: no control image for {image.name} in {folder} "
        f"(expected a file named {image.stem}.png or another image type)"
    )


def folder_maps(
    folder: Path, contents: FolderContents, size: tuple[int, int], interrupted: Callable[[], bool]
) -> ControlMaps:
    """Each training image's control image from `folder`, matched by file stem."""
    check_conditioning_folder(folder)
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() != ".txt"):
        by_stem.setdefault(path.stem, []).append(path)
    maps: ControlMaps = {}
    for source in contents.images:
        _check_interrupt(interrupted)
        candidates = by_stem.get(source.path.stem)
        if not candidates:
            raise TrainingError(_missing(source.path, folder))
        same = [p for p in candidates if p.suffix.lower() == source.path.suffix.lower()]
        maps[source.path.name] = read_control_image((same or candidates)[0], size)
    return maps


def preprocessed_maps(
    spec: Preprocessor,
    settings: ControlNetTrainingSettings,
    contents: FolderContents,
    interrupted: Callable[[], bool],
) -> ControlMaps:
    """Each training image's control image made by `spec` from the image at the training size."""
    maps: ControlMaps = {}
    for source in contents.images:
        _check_interrupt(interrupted)
        maps[source.path.name] = run_preprocessor(spec, settings, to_uint8(source.pixels))
    return maps


def run_preprocessor(
    spec: Preprocessor, settings: ControlNetTrainingSettings, image: np.ndarray
) -> np.ndarray:
    """`spec`'s map of `image` (HxWx3 uint8), at the image's size; the resolution defaults to the
    training size's shorter side, so the map is made at the size it is trained at."""
    height, width = image.shape[:2]
    resolution = settings.preprocessor_resolution
    if resolution == -1:
        resolution = min(settings.training_width, settings.training_height)
    detected = spec.run(
        image, resolution, settings.preprocessor_threshold_a, settings.preprocessor_threshold_b
    )
    if detected.shape[:2] != (height, width):
        detected = np.asarray(Image.fromarray(detected).resize((width, height), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(detected)


def read_control_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    """A control image file as HxWx3 uint8 at `size` (width, height); an unreadable file names itself."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TrainingError(f"control image {path.name} cannot be read: {exc}") from exc
    if image.size != size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).copy()


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """A training image [3, H, W] in [-1, 1] as HxWx3 uint8 (what a preprocessor takes)."""
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.permute(1, 2, 0).contiguous().numpy()


def control_batch(maps: ControlMaps, names: Sequence[str]) -> torch.Tensor:
    """The control images of a batch's images: [B, 3, H, W] float in [0, 1]."""
    arrays = np.stack([maps[name] for name in names])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0


def _check_interrupt(interrupted: Callable[[], bool]) -> None:
    if interrupted():
        raise TrainingError("interrupted while the dataset was being prepared")
