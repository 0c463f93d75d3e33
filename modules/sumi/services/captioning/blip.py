"""BLIP captions for a picture (A1111's `shared.interrogator.generate_caption`): the model folder is
loaded once with transformers, from local files only, and kept (reloaded when its config changes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.errors import ModelLoadError


class BlipModels:
    """The captioning model and processor of a folder, read once."""

    def __init__(self) -> None:
        self._loaded: tuple[Path, float, Any, Any] | None = None

    def load(self, folder: Path) -> tuple[Any, Any]:
        """(model, processor) of `folder` (on the CPU when first read)."""
        mtime = (folder / "config.json").stat().st_mtime
        if self._loaded is not None and self._loaded[:2] == (folder, mtime):
            return self._loaded[2], self._loaded[3]
        self._loaded = None
        model, processor = _from_folder(folder)
        self._loaded = (folder, mtime, model, processor)
        return model, processor

    def unload(self) -> None:
        self._loaded = None


def _from_folder(folder: Path) -> tuple[Any, Any]:
    """A BLIP captioner (or another image-to-text model transformers knows) and its processor."""
    import transformers

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder / 'config.json'}: not a readable config ({exc})") from exc
    architectures = config.get("architectures") or []
    model_class = (
        transformers.BlipForConditionalGeneration
        if "BlipForConditionalGeneration" in architectures or config.get("model_type") == "blip"
        else transformers.AutoModelForImageTextToText
    )
    try:
        processor = transformers.AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        model = model_class.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"{folder}: could not load the captioning model ({exc})") from exc
    return model.eval(), processor
