"""sd-webui-controlnet's batch input mode: a unit with `input_mode: "batch"` takes its pictures from
`batch_images` (a folder, or a list of base64 pictures), one per job.

In txt2img and img2img the job runs once per picture (as many times as the shortest batch unit has
pictures); in img2img's Batch tab the n-th input image goes with each batch unit's n-th picture. Folders
are read in name order (sub-folders too) and must lie inside the data folder (or a folder allowed with
--gradio-allowed-path): an API client must not read the server's other files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from modules.sumi.engine.controlnet.image_fit import check_size
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.controlnet.units import ControlNetUnit, decode_image

PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class ControlBatch:
    """The pictures of each batch unit (by unit index), in order; `names` name the results (the first
    batch unit's picture names, as the extension saves them)."""

    pictures: dict[int, list[Path | str]]
    names: list[str]
    output_dir: str = ""
    count: int = field(init=False)

    def __post_init__(self) -> None:
        self.count = min(len(p) for p in self.pictures.values())

    def units_for(self, units: Sequence[ControlNetUnit], k: int) -> list[ControlNetUnit]:
        """The units of job `k`: each batch unit with its k-th picture (no detected map per job, as the
        extension); the other units as they are."""
        out = list(units)
        for index, pictures in self.pictures.items():
            picture = pictures[k]
            where = f"ControlNet unit {index}: batch picture {self.names[k] if index == self._first else k}"
            image = decode_image(_open(picture, where) if isinstance(picture, Path) else picture, where)
            out[index] = dataclasses.replace(
                units[index], images=[image], masks=[], input_mode="simple", save_detected_map=False
            )
        return out

    @property
    def _first(self) -> int:
        return next(iter(self.pictures))


def control_batch(units: Sequence[ControlNetUnit], confine: Callable[[str], Path]) -> ControlBatch | None:
    """The batch of the enabled batch-mode units, or None when no unit is in batch mode."""
    pictures: dict[int, list[Path | str]] = {}
    names: list[str] = []
    output_dir = ""
    for index, unit in enumerate(units):
        if not unit.enabled or unit.input_mode != "batch":
            continue
        found = _pictures(unit, index, confine)
        if not found:
            raise InvalidRequestError(
                f"ControlNet unit {index}: batch mode, but batch_images holds no pictures"
            )
        pictures[index] = found
        names = names or [p.stem if isinstance(p, Path) else f"{i:05d}" for i, p in enumerate(found)]
        output_dir = unit.output_dir or output_dir  # the extension: the last batch unit's folder
    if not pictures:
        return None
    return ControlBatch(pictures, names, output_dir)


def _pictures(unit: ControlNetUnit, index: int, confine: Callable[[str], Path]) -> list[Path | str]:
    source = unit.batch_images
    if isinstance(source, list):
        return list(source)
    if not source.strip():
        raise InvalidRequestError(f"ControlNet unit {index}: batch mode needs batch_images (a folder)")
    try:
        folder = confine(source.strip())
    except ValueError as exc:
        raise InvalidRequestError(f"ControlNet unit {index}: batch folder {exc}") from exc
    if not folder.is_dir():
        raise InvalidRequestError(f"ControlNet unit {index}: the batch folder {source!r} does not exist")
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in PICTURE_EXTENSIONS)


def _open(path: Path, where: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            check_size(image.height, image.width, where)  # before decoding: a huge file is refused
            image.load()
            return image
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise InvalidRequestError(f"{where}: not a readable picture ({exc})") from exc
