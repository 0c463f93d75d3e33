"""Captioning pictures on the job worker (A1111 holds its queue lock while it interrogates): the two
interrogators A1111's API names ("clip": the BLIP caption; "deepdanbooru": tags), with A1111's
Interrogate settings read at each call.

Models are found when a call is made (a file dropped in works without a restart) and a missing one is
refused before anything is queued. They are kept in RAM once read; `interrogate_keep_models_in_memory`
keeps them on the GPU between calls too (A1111's "Keep models in VRAM"), otherwise they go back to the
CPU after each call. `--use-cpu interrogate` (or `all`) runs them on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image

from modules.sumi.engine.captioning.blip import CaptionOptions, generate_caption
from modules.sumi.engine.captioning.tags import TagOptions
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.captioning.blip import BlipModels
from modules.sumi.services.captioning.deepbooru import DeepBooruFiles, tag_picture
from modules.sumi.services.captioning.files import blip_folder, blip_folders, deepdanbooru_file
from modules.sumi.services.captioning.folder import caption_pictures, folder_pictures

CLIP = "clip"
DEEPDANBOORU = "deepdanbooru"
INTERROGATORS = (CLIP, DEEPDANBOORU)
T = TypeVar("T")


class CaptionService:
    def __init__(
        self,
        models_dir: Path,
        options: Any,
        queue: Any,
        state: Any,
        *,
        device: Callable[[], torch.device | str],
        half: bool = False,
        allow_unsafe_pickle: bool = False,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.options = options
        self.queue = queue
        self.state = state
        self.device = device
        self.dtype = torch.float16 if half else torch.float32
        self.deepbooru = DeepBooruFiles(allow_unsafe_pickle)
        self.blip = BlipModels()

    # -- entry points --------------------------------------------------------------------------------
    def interrogate(self, image: Image.Image, model: str) -> str:
        """A1111's `/sdapi/v1/interrogate`: "clip" captions, "deepdanbooru" tags."""
        describe = self.describer(model)
        return self._on_worker(lambda: describe(image.convert("RGB")))

    def describer(self, model: str) -> Callable[[Image.Image], str]:
        """What "clip" or "deepdanbooru" does to an RGB picture on the worker; its model is looked for now."""
        if model == CLIP:
            folder = blip_folder(self.models_dir, str(self.options.interrogate_blip_model or ""))
            return lambda image: self._caption(folder, image)
        if model == DEEPDANBOORU:
            path = deepdanbooru_file(self.models_dir)
            return lambda image: self._tag(path, image, None)
        raise InvalidRequestError(f"unknown interrogator {model!r}; use {' or '.join(INTERROGATORS)}")

    def tag(self, image: Image.Image, *, ranks: bool | None = None) -> str:
        """DeepDanbooru's tags; `ranks` False leaves `(tag:score)` out whatever the setting says (A1111's
        `force_disable_ranks`)."""
        path = deepdanbooru_file(self.models_dir)
        return self._on_worker(lambda: self._tag(path, image.convert("RGB"), ranks))

    def caption(self, image: Image.Image) -> str:
        """The BLIP caption."""
        folder = blip_folder(self.models_dir, str(self.options.interrogate_blip_model or ""))
        return self._on_worker(lambda: self._caption(folder, image.convert("RGB")))

    def interrogate_folder(self, input_dir: Path, output_dir: Path | None, model: str) -> list[Path]:
        """Caption every picture of `input_dir` into `<name>.txt` files (see `folder`), in one job that
        Interrupt stops between pictures; the caption files written."""
        pictures = folder_pictures(input_dir)
        describe = self.describer(model)
        return self._on_worker(
            lambda: caption_pictures(pictures, output_dir, describe, lambda: bool(self.state.interrupted))
        )

    def blip_choices(self) -> dict[str, Any]:
        """The `interrogate_blip_model` dropdown: "" (the first) and the folders of models/BLIP."""
        return {"choices": ["", *blip_folders(self.models_dir)]}

    def unload(self) -> None:
        self.deepbooru.unload()
        self.blip.unload()

    # -- on the worker ------------------------------------------------------------------------------
    def _on_worker(self, work: Callable[[], T]) -> T:
        """`work()` inline inside a job (the Extras Caption script), else as an "interrogate" job."""
        if self.queue.on_worker():
            return work()

        def job() -> T:
            self.state.begin(job="interrogate")
            return work()

        return self.queue.run("interrogate", job)

    def _tag(self, path: Path, image: Image.Image, ranks: bool | None) -> str:
        o = self.options
        options = TagOptions(
            threshold=float(o.interrogate_deepbooru_score_threshold),
            sort_alpha=bool(o.deepbooru_sort_alpha),
            use_spaces=bool(o.deepbooru_use_spaces),
            escape=bool(o.deepbooru_escape),
            filter_tags=str(o.deepbooru_filter_tags or ""),
            ranks=bool(o.interrogate_return_ranks)
            if ranks is None
            else bool(ranks and o.interrogate_return_ranks),
        )
        model = self.deepbooru.model(path)
        with self._placed(model):
            return tag_picture(model, image, options)

    def _caption(self, folder: Path, image: Image.Image) -> str:
        o = self.options
        options = CaptionOptions(
            num_beams=int(o.interrogate_clip_num_beams),
            min_length=int(o.interrogate_clip_min_length),
            max_length=int(o.interrogate_clip_max_length),
        )
        model, processor = self.blip.load(folder)
        with self._placed(model):
            return generate_caption(model, processor, image, options)

    @contextmanager
    def _placed(self, model: torch.nn.Module) -> Iterator[None]:
        """The model on the interrogation device for the call; back on the CPU afterwards unless the
        models are to stay in VRAM."""
        model.to(self.device(), self.dtype)
        try:
            yield
        finally:
            if not self.options.interrogate_keep_models_in_memory:
                model.to("cpu")  # in the device's dtype: no rounding on every round trip
