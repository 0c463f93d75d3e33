"""A1111's Extras-tab script API: `ScriptPostprocessing` (what extensions subclass) and the
`PostprocessedImage` that goes through every enabled script in turn.

Names, fields and meanings are A1111 1.10's (`modules.scripts_postprocessing`): `ui()` returns a
dict of named components, `process(pp, **args)` gets their values by those names, `process_firstpass`
runs for every script before any `process`, `pp.extra_images` adds more outputs (rembg's mask, a
caption's crops), `pp.info` collects the infotext entries and `pp.nametags` the file name suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class PostprocessedImageSharedInfo:
    """What scripts tell each other in `process_firstpass` (the size the Upscale script will reach)."""

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

    def get_suffix(self, used_suffixes: dict[str, int] | None = None) -> str:
        """`-tag1-tag2` from the name tags, numbered (`-1`, `-2`...) when another output took it."""
        used = {} if used_suffixes is None else used_suffixes
        suffix = "-".join(self.nametags)
        suffix = f"-{suffix}" if suffix else ""
        if suffix not in used:
            used[suffix] = 1
            return suffix
        for i in range(1, 100):
            proposed = f"{suffix}-{i}"
            if proposed not in used:
                used[proposed] = 1
                return proposed
        return suffix

    def create_copy(
        self, new_image: Any, *, nametags: list[str] | None = None, disable_processing: bool = False
    ) -> PostprocessedImage:
        """A new output sharing this one's shared info, infotext entries and name tags (A1111), and its
        caption unless it is a by-product kept out of processing (a debug picture): a flipped copy or a
        tile of a training picture is captioned like it (A1111 leaves copies without one)."""
        pp = PostprocessedImage(new_image)
        pp.shared = self.shared
        pp.nametags = [*self.nametags, *(nametags or [])]
        pp.info = dict(self.info)
        pp.disable_processing = disable_processing
        pp.caption = None if disable_processing else self.caption
        return pp


class ScriptPostprocessing:
    """Base class of A1111 Extras-tab scripts: set `name` (and `order`), override `ui()` and
    `process(pp, **args)`."""

    filename: str | None = None
    controls: dict[str, Any] | None = None
    args_from: int | None = None
    args_to: int | None = None
    order: int = 1000  # scripts run (and show) by this value, unless opt postprocessing_operation_order says
    name: str | None = None
    group: Any = None
    main_ui_only: bool = False  # A1111: shown only in txt2img/img2img (never in Extras)
    extra_only: bool = False

    def ui(self) -> dict[str, Any]:
        """Create the script's components; return {argument name: component}."""
        return {}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        """Change `pp.image` (and add `pp.info` entries); `args` are the values of `ui()`'s components."""

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        """Called for every script before any `process`: look at the image, set `pp.shared` fields."""

    def image_changed(self) -> None:
        """The Extras input image changed (drop caches)."""
