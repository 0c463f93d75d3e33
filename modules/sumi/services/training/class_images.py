"""DreamBooth's class images: the class folder filled up to the wanted count by Sumi itself.

Images already in the folder are used as they are (a user's own regularisation images included); only
the missing ones are made, each a txt2img of the class prompt with the loaded model (before any
training step), seeded `seed + k` for file `class-<k>.png`, saved with the class prompt as its `.txt`
caption and the generation parameters in the PNG. A second run with the same folder makes none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.util.atomic import temp_beside

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})

Generate = Callable[[dict[str, Any]], Image.Image | None]


@dataclass(frozen=True)
class ClassImageRequest:
    folder: Path
    count: int
    prompt: str
    negative_prompt: str = ""
    steps: int = 20
    sampler_name: str = "Euler a"
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    seed: int = 0


def class_image_files(folder: Path) -> list[Path]:
    """The images directly in `folder`, in file-name order (none when it does not exist yet)."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def missing_count(folder: Path, count: int) -> int:
    return max(0, count - len(class_image_files(folder)))


def generate_class_images(
    request: ClassImageRequest,
    generate: Generate,
    progress: Callable[[int, int], None],
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Path]:
    """Make the missing images; returns the files written (fewer when interrupted: an image whose
    generation was interrupted is not kept)."""
    missing = missing_count(request.folder, request.count)
    written: list[Path] = []
    if not missing:
        return written
    if not request.prompt.strip():
        raise TrainingError(
            f"class_prompt: {missing} class images are missing from {request.folder.name} and there is "
            "no class prompt to generate them from"
        )
    request.folder.mkdir(parents=True, exist_ok=True)
    names = _free_names(request.folder)
    for done in range(missing):
        if should_stop():
            break
        progress(done + 1, missing)
        index, path = next(names)
        image = generate(_fields(request, request.seed + index))
        if should_stop():
            break
        if image is None:
            raise TrainingError("generating a class image gave no image")
        _save(image, path, request.prompt)
        written.append(path)
    return written


def _fields(request: ClassImageRequest, seed: int) -> dict[str, Any]:
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "steps": request.steps,
        "sampler_name": request.sampler_name,
        "cfg_scale": request.cfg_scale,
        "seed": seed,
        "width": request.width,
        "height": request.height,
    }


def _free_names(folder: Path):
    """(k, class-<k>.png) for every k whose image and caption names are both free."""
    k = 0
    while True:
        path = folder / f"class-{k:05d}.png"
        if not path.exists() and not path.with_suffix(".txt").exists():
            yield k, path
        k += 1


def _save(image: Image.Image, path: Path, caption: str) -> None:
    info = PngInfo()
    parameters = image.info.get("parameters")
    if isinstance(parameters, str):
        info.add_text("parameters", parameters)
    path.with_suffix(".txt").write_text(caption.strip() + "\n", encoding="utf-8")
    with temp_beside(path, suffix=".tmp.png") as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
        tmp.replace(path)
