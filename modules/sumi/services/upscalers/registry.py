"""One registry of upscalers with A1111's names: None, Lanczos, Nearest, then model files.

Everything that upscales a picture (hires fix's image path, SD upscale, Extras, `images.resize_image`
with an upscaler name) goes through `UpscalerRegistry.resize` / `.upscale`, which follow A1111's
`images.resize_image` and `Upscaler.upscale`. The latent modes ("Latent", "Latent (bicubic)", ...) are
not pictures' upscalers: they live in `engine.upscalers.latent` and are listed by `latent_modes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.upscalers.latent import LATENT_MODES
from modules.sumi.engine.upscalers.tiled import upscale_image
from modules.sumi.services.upscalers import model_files
from modules.sumi.services.upscalers.entry import UpscalerEntry
from modules.sumi.services.upscalers.loaded import LoadedModels

log = logging.getLogger(__name__)
LANCZOS = Image.Resampling.LANCZOS
NEAREST = Image.Resampling.NEAREST
MAX_PASSES = 3  # A1111 runs a model at most three times to reach a scale
# The settings that tile each folder's models (A1111: HAT and Real-ESRGAN use ESRGAN's).
TILE_SETTINGS = {
    "ESRGAN": ("ESRGAN_tile", "ESRGAN_tile_overlap"),
    "RealESRGAN": ("ESRGAN_tile", "ESRGAN_tile_overlap"),
    "HAT": ("ESRGAN_tile", "ESRGAN_tile_overlap"),
    "DAT": ("DAT_tile", "DAT_tile_overlap"),
    "SwinIR": ("SWIN_tile", "SWIN_tile_overlap"),
}
CHOICE_SETTINGS = ("upscaler_for_img2img",)  # settings whose value is an upscaler name
SETTING_DEFAULTS: dict[str, Any] = {
    "ESRGAN_tile": 192,
    "ESRGAN_tile_overlap": 8,
    "DAT_tile": 192,
    "DAT_tile_overlap": 8,
    "SWIN_tile": 192,
    "SWIN_tile_overlap": 8,
    "realesrgan_enabled_models": ["R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B"],
    "dat_enabled_models": ["DAT x2", "DAT x3", "DAT x4"],
}


BUILTIN: tuple[UpscalerEntry, ...] = (
    UpscalerEntry("None", "none"),
    UpscalerEntry("Lanczos", "resample"),
    UpscalerEntry("Nearest", "resample"),
)
_RESAMPLING = {"Lanczos": LANCZOS, "Nearest": NEAREST}


class UpscalerRegistry:
    """The upscalers a user can pick: the built-in ones, then the model files of `folders` (found by
    `refresh`, loaded on first use; see `model_files`, `loaded`)."""

    def __init__(
        self,
        interrupted: Callable[[], bool] = lambda: False,
        *,
        folders: Sequence[tuple[str, Sequence[Path]]] = (),
        setting: Callable[[str], Any] | None = None,
        device: Callable[[], torch.device] = lambda: torch.device("cpu"),
        prefer_half: bool = False,
        allow_unsafe_pickle: bool = False,
    ) -> None:
        self._models: list[UpscalerEntry] = []
        self._interrupted = interrupted
        self._folders = [(kind, tuple(Path(d) for d in dirs)) for kind, dirs in folders]
        self._setting = setting or (lambda key: SETTING_DEFAULTS.get(key))
        self._device = device
        self._prefer_half = prefer_half
        self._allow_unsafe_pickle = allow_unsafe_pickle
        self._scanned = False
        self._files: frozenset[Path] = frozenset()
        self._scales: dict[Path, float] = {}  # a loaded model's own scale, by file
        self.loaded = LoadedModels(size=1)

    # -- listing ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rescan the model folders (no weights are read) and unload the loaded models."""
        self._models = model_files.scan(self._folders)
        self._files = self._file_set()
        self._scanned = True
        self._scales.clear()
        self.loaded.clear()

    def rescan(self) -> None:
        """`refresh` when files were added to or removed from the folders since the last scan."""
        if not self._scanned or self._file_set() != self._files:
            self.refresh()

    def _file_set(self) -> frozenset[Path]:
        return frozenset(p for _, dirs in self._folders for d in dirs for p in model_files.model_files(d))

    def attach_choices(self, labels: dict[str, Any]) -> None:
        """Give the settings that name an upscaler (`upscaler_for_img2img`, ...) this registry's names
        as their choices, rescanned each time the Settings page asks."""

        def choices() -> dict[str, Any]:
            self.rescan()
            return {"choices": self.names()}

        for key in CHOICE_SETTINGS:
            if key in labels:
                labels[key].component_args = choices

    def folders(self) -> list[tuple[str, tuple[Path, ...]]]:
        return list(self._folders)

    def model_entries(self) -> list[UpscalerEntry]:
        """The model files, A1111's known Real-ESRGAN / DAT files only when enabled in the settings."""
        if not self._scanned:
            self.refresh()
        enabled = {
            *(self._setting("realesrgan_enabled_models") or ()),
            *(self._setting("dat_enabled_models") or ()),
        }
        known = {name for table in model_files.KNOWN.values() for name, _ in table.values()}
        shown = [e for e in self._models if e.name not in known or e.name in enabled]
        return [_with_scale(e, self._scales.get(e.path)) if e.path else e for e in shown]

    def entries(self) -> list[UpscalerEntry]:
        """A1111's order: None, Lanczos, Nearest, then the model files."""
        return [*BUILTIN, *self.model_entries()]

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

    def model_pass(self, image: Image.Image, name: str) -> Image.Image:
        """One pass of the named model at its own factor (A1111's `do_upscale`)."""
        entry = self.find(name)
        if entry.kind != "model":
            raise InvalidRequestError(f"upscaler {entry.name!r} is not a model")
        return self._model_upscale(entry, image)

    def resizer(self, name: str | None) -> Callable[[Image.Image, int, int], Image.Image]:
        """`resize` with the named upscaler for `images.resize_image` (A1111: an unknown name falls back
        to the first upscaler, "None", with a message)."""
        try:
            entry = self.find(name)
        except InvalidRequestError:
            log.warning("could not find upscaler named %r, using None as a fallback", name or "")
            entry = BUILTIN[0]
        return lambda image, width, height: self.resize(image, width, height, entry.name)

    def _model_upscale(self, entry: UpscalerEntry, image: Image.Image) -> Image.Image:
        """One pass of a model upscaler at its own factor, tiled with overlap as the settings say."""
        assert entry.path is not None
        descriptor = self.load(entry)
        tile_key, overlap_key = TILE_SETTINGS.get(entry.folder or "", TILE_SETTINGS["ESRGAN"])
        param = next(descriptor.model.parameters())
        return upscale_image(
            descriptor,
            image,
            device=param.device,
            dtype=param.dtype,
            tile=int(self._setting(tile_key) or 0),
            overlap=int(self._setting(overlap_key) or 0),
            interrupted=self._interrupted,
            desc=f"Upscaling with {entry.name}",
        )

    def load(self, entry: UpscalerEntry) -> Any:
        """The entry's spandrel ModelDescriptor on the job device (cached); its scale becomes the
        entry's. A file that is not an upscaler is a ModelLoadError naming it."""
        if entry.path is None:
            raise InvalidRequestError(f"upscaler {entry.name!r} is not a model")
        device = self._device()
        descriptor = self.loaded.get(
            entry.path,
            device=device,
            prefer_half=self._prefer_half and device.type == "cuda",
            allow_unsafe_pickle=self._allow_unsafe_pickle,
        )
        self._scales[entry.path] = float(descriptor.scale)
        return descriptor


def _with_scale(entry: UpscalerEntry, scale: float | None) -> UpscalerEntry:
    return entry if scale is None or scale == entry.scale else replace(entry, scale=scale)
