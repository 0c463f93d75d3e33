"""One registry of upscalers with A1111's names: None, Lanczos, Nearest, then model files.

Everything that upscales a picture (hires fix's image path, SD upscale, Extras, `images.resize_image`
with an upscaler name) goes through `UpscalerRegistry.resize` / `.upscale`, which follow A1111's
`images.resize_image` and `Upscaler.upscale`. The latent modes ("Latent", "Latent (bicubic)", ...) are
not pictures' upscalers: they live in `engine.upscalers.latent` and are listed by `latent_modes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.upscalers.latent import LATENT_MODES

LANCZOS = Image.Resampling.LANCZOS
NEAREST = Image.Resampling.NEAREST
MAX_PASSES = 3  # A1111 runs a model at most three times to reach a scale


@dataclass(frozen=True)
class UpscalerEntry:
    """One choice in the upscaler lists (A1111's `UpscalerData`)."""

    name: str
    kind: Literal["none", "resample", "model"]
    path: Path | None = None  # model upscalers: the weights file
    scale: float = 4.0  # model upscalers: the model's own factor; A1111 lists 4 for the resamplers
    folder: str | None = None  # model upscalers: "ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT", ...


BUILTIN: tuple[UpscalerEntry, ...] = (
    UpscalerEntry("None", "none"),
    UpscalerEntry("Lanczos", "resample"),
    UpscalerEntry("Nearest", "resample"),
)
_RESAMPLING = {"Lanczos": LANCZOS, "Nearest": NEAREST}


class UpscalerRegistry:
    """The upscalers a user can pick. Model files are found by `refresh` (see `models`)."""

    def __init__(self, interrupted: Callable[[], bool] = lambda: False) -> None:
        self._models: list[UpscalerEntry] = []
        self._interrupted = interrupted

    # -- listing ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rescan the model folders (none in this registry; subclasses or later work add them)."""

    def entries(self) -> list[UpscalerEntry]:
        """A1111's order: None, Lanczos, Nearest, then the model files."""
        return [*BUILTIN, *self._models]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    @staticmethod
    def latent_modes() -> list[str]:
        return list(LATENT_MODES)

    def find(self, name: str | None) -> UpscalerEntry:
        """The entry called `name` (case-insensitive); None or "" is "None". An unknown name is a clear
        InvalidRequestError naming the choices."""
        if not name:
            return BUILTIN[0]
        wanted = str(name).strip().lower()
        for entry in self.entries():
            if entry.name.lower() == wanted:
                return entry
        raise InvalidRequestError(f"upscaler {name!r} not found; choose from {', '.join(self.names())}")

    # -- upscaling ----------------------------------------------------------------------------------
    def upscale(self, image: Image.Image, scale: float, name: str | None) -> Image.Image:
        """A1111's `Upscaler.upscale`: enlarge by `scale` to a multiple of 8 (a model runs up to three
        times until the size is reached, then Lanczos gives the exact size). "None" returns `image`."""
        entry = self.find(name)
        if entry.kind == "none":
            return image
        dest = (int(image.width * scale // 8 * 8), int(image.height * scale // 8 * 8))
        if entry.kind == "resample":
            return image.resize(dest, _RESAMPLING[entry.name])
        for i in range(MAX_PASSES):
            if image.width >= dest[0] and image.height >= dest[1] and (i > 0 or scale != 1):
                break
            if self._interrupted():
                break
            before = image.size
            image = self._model_upscale(entry, image)
            if image.size == before:
                break
        return image if image.size == dest else image.resize(dest, LANCZOS)

    def resize(self, image: Image.Image, width: int, height: int, name: str | None) -> Image.Image:
        """A1111's `images.resize_image(0, image, width, height, upscaler_name)`: enlarge with the
        upscaler when the target is bigger, then Lanczos to the exact size."""
        entry = self.find(name)
        if entry.kind == "none" or image.mode == "L":
            return image.resize((width, height), LANCZOS)
        scale = max(width / image.width, height / image.height)
        if scale > 1.0:
            image = self.upscale(image, scale, entry.name)
        return image if image.size == (width, height) else image.resize((width, height), LANCZOS)

    def _model_upscale(self, entry: UpscalerEntry, image: Image.Image) -> Image.Image:
        """One pass of a model upscaler (its own factor). Implemented with the model loader."""
        raise InvalidRequestError(f"upscaler {entry.name!r}: model upscalers are not available")
