"""A1111's `modules.interrogate`: `InterrogateModels`, the class of `shared.interrogator`.

Extensions call `shared.interrogator.interrogate(image)` (A1111's "Interrogate CLIP") or
`generate_caption(image)`; both give the BLIP caption of Sumi's captioning service (a model folder in
models/BLIP, never downloaded), on the job worker with the Interrogate settings. A1111's ranked CLIP
categories (artists, flavors, ...) are not added. `load`/`unload` and the `send_*_to_ram` calls are
accepted: the service loads on use and moves models back to RAM by `interrogate_keep_models_in_memory`.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

blip_image_eval_size = 384
clip_model_name = "ViT-L/14"
Category = namedtuple("Category", ["name", "topn", "items"])


def category_types() -> list[str]:
    """A1111 lists its CLIP category files; Sumi ranks no categories, so there are none."""
    return []


class InterrogateModels:
    blip_model = None
    clip_model = None
    clip_preprocess = None
    dtype = None
    running_on_cpu = None

    def __init__(self, content_dir: str = "interrogate") -> None:
        self.content_dir = content_dir
        self.loaded_categories: list[Category] = []
        self.skip_categories: list[str] = []

    def categories(self) -> list[Category]:
        return []

    def interrogate(self, pil_image: Any) -> str:
        """The picture's caption (A1111 appends ranked CLIP categories after it; Sumi does not)."""
        return self.generate_caption(pil_image)

    def generate_caption(self, pil_image: Any) -> str:
        from modules import shared

        return shared.app().captioning.caption(pil_image)

    def load(self) -> None:
        """Models load on first use."""

    def unload(self) -> None:
        from modules import shared

        shared.app().captioning.unload()

    def send_clip_to_ram(self) -> None:
        """No CLIP model is held."""

    def send_blip_to_ram(self) -> None:
        """The service moves the model back after each call unless it is to stay in VRAM."""
