"""A training folder's pictures and captions for the Train tab's Dataset panel: the pictures directly
in the folder (as training reads them), each with its `<name>.txt` caption, edited one at a time or
all at once (find/replace, add or remove a tag). Captions are written atomically; a picture without a
caption file gets one when an edit gives it a caption."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.captioning.folder import folder_pictures
from modules.sumi.util.atomic import write_atomic


@dataclass(frozen=True)
class CaptionedPicture:
    image: Path
    caption: str

    @property
    def caption_file(self) -> Path:
        return caption_file(self.image)


def caption_file(image: Path) -> Path:
    return image.with_suffix(".txt")


def read_caption(image: Path) -> str:
    path = caption_file(image)
    try:
        return path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{path}: cannot read the caption ({exc})") from exc


def dataset_pictures(folder: Path) -> list[CaptionedPicture]:
    """The folder's pictures in name order with their captions ("" for none)."""
    return [CaptionedPicture(image, read_caption(image)) for image in folder_pictures(folder)]


def write_caption(image: Path, caption: str) -> Path:
    """Replace the picture's caption file with `caption` (one line, trimmed)."""
    if not image.is_file():
        raise InvalidRequestError(f"{image.name} is no longer in {image.parent}")
    text = " ".join(caption.split())
    return write_atomic(caption_file(image), text.encode("utf-8"))


def edit_captions(folder: Path, edit: Callable[[str], str]) -> int:
    """Apply `edit` to every picture's caption; the number of caption files changed."""
    changed = 0
    for picture in dataset_pictures(folder):
        new = edit(picture.caption)
        if new != picture.caption:
            write_caption(picture.image, new)
            changed += 1
    return changed
