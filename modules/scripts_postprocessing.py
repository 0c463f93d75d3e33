"""A1111's `modules.scripts_postprocessing`: the base class of Extras-tab scripts.

Extensions (rembg, ReActor, roop) subclass `ScriptPostprocessing` and build `PostprocessedImage`s.
Sumi has no Extras tab yet, so such scripts load but are never run; the classes keep A1111's names and
fields so the extension's other parts (its txt2img hooks, API routes) work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PostprocessedImageSharedInfo:
    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    """An image going through the Extras scripts, with the infotext entries they add (A1111)."""

    def __init__(self, image: Any) -> None:
        self.image = image
        self.info: dict[str, Any] = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images: list[Any] = []
        self.nametags: list[str] = []
        self.disable_processing = False
        self.caption: str | None = None

    def get_suffix(self, used_suffixes: set[str] | None = None) -> str:
        suffix = "-".join(self.nametags)
        return f"-{suffix}" if suffix else ""

    def create_copy(
        self, new_image: Any, *, nametags: list[str] | None = None, disable_processing: bool = False
    ):
        pp = PostprocessedImage(new_image)
        pp.nametags = self.nametags + (nametags or [])
        pp.disable_processing = disable_processing
        return pp


class ScriptPostprocessing:
    """Base class of A1111 Extras-tab scripts: override `ui()` and `process(pp, **args)`. Plain class
    attributes, as A1111's, so a subclass's `name = "..."` / `order = ...` are what instances show."""

    filename: str | None = None
    controls: dict[str, Any] | None = None
    args_from: int | None = None
    args_to: int | None = None
    order: int = 1000
    name: str | None = None
    group: Any = None

    def ui(self) -> dict[str, Any]:
        return {}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def image_changed(self) -> None:
        pass
