"""Captioning a folder of pictures (A1111's img2img Interrogate buttons on the Batch tab): each
picture's caption is added as a line to `<name>.txt` in the output folder, or next to the picture
when there is none. A1111 appends, so running it twice leaves two lines; the pictures are those
directly in the folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from modules.sumi.engine.errors import InvalidRequestError

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif")


def folder_pictures(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InvalidRequestError(f"the input directory {str(folder)!r} does not exist")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)


def caption_pictures(
    pictures: list[Path],
    output_dir: Path | None,
    describe: Callable[[Image.Image], str],
    interrupted: Callable[[], bool] = lambda: False,
) -> list[Path]:
    """The caption files written (pictures that cannot be read are skipped)."""
    written = []
    for picture in pictures:
        if interrupted():
            break
        try:
            with Image.open(picture) as opened:
                image = opened.convert("RGB")
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            continue
        target = (output_dir or picture.parent) / f"{picture.stem}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a", encoding="utf-8") as file:
            file.write(describe(image) + "\n")
        written.append(target)
    return written
