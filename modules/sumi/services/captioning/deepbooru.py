"""DeepDanbooru tags for a picture (A1111's `deepbooru.model.tag`): the file is read once with
`torch.load(weights_only=True)` and kept (reloaded when the file changes); a picture is scored fitted
into 512x512 (A1111's resize mode 2) and its tags written with the options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine.captioning.deepdanbooru import INPUT_SIZE, DeepDanbooru, tag_probabilities
from modules.sumi.engine.captioning.tags import TagOptions, format_tags
from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_pickle
from modules.sumi.services.images.resize import resize_image


class DeepBooruFiles:
    """The DeepDanbooru network of a file, read once."""

    def __init__(self, allow_unsafe_pickle: bool = False) -> None:
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._loaded: tuple[Path, float, DeepDanbooru] | None = None

    def model(self, path: Path) -> DeepDanbooru:
        """The network of `path` (on the CPU when first read)."""
        mtime = path.stat().st_mtime
        if self._loaded is not None and self._loaded[:2] == (path, mtime):
            return self._loaded[2]
        self._loaded = None
        state = read_pickle(path, self.allow_unsafe_pickle)
        if not isinstance(state, dict):
            raise ModelLoadError(f"{path}: holds a {type(state).__name__}, not DeepDanbooru's state dict")
        model = DeepDanbooru.from_state_dict(state, str(path))
        self._loaded = (path, mtime, model)
        return model

    def unload(self) -> None:
        self._loaded = None


def tag_picture(model: DeepDanbooru, image: Image.Image, options: TagOptions) -> str:
    """The tags of `image`, the picture fitted into 512x512 as A1111 does (resize mode 2)."""
    picture = resize_image(2, image.convert("RGB"), INPUT_SIZE, INPUT_SIZE)
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)[None]
    return format_tags(model.tags, tag_probabilities(model, pixels)[0].tolist(), options)
