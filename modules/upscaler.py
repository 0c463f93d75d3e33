"""A1111's `modules.upscaler`: the classes extensions use to name and run upscalers.

`shared.sd_upscalers` is a live list of `UpscalerData` built from the App's upscaler registry (None,
Lanczos, Nearest, then the model files); `data.scaler.upscale(img, scale, data.data_path)` runs the
registry's A1111 `Upscaler.upscale` for that entry (a model runs up to three times, tiled). An
extension's own `Upscaler` subclass keeps A1111's behaviour: `upscale` calls its `do_upscale`.
"""

from __future__ import annotations

import os
from typing import Any

from PIL import Image

from modules import modelloader, shared
from modules.sumi.services.upscalers.entry import UpscalerEntry
from modules.sumi.services.upscalers.registry import BUILTIN

LANCZOS = Image.Resampling.LANCZOS
NEAREST = Image.Resampling.NEAREST


class Upscaler:
    name: str | None = None
    model_path: str | None = None
    model_name: str | None = None
    model_url: str | None = None
    enable = True
    filter = None
    model = None
    user_path: str | None = None
    scalers: list[UpscalerData] = []
    tile = True

    def __init__(self, create_dirs: bool = False) -> None:
        self.mod_pad_h = None
        self.tile_size = 192
        self.tile_pad = 8
        self.device = None
        self.scale = 1
        self.half = False
        self.pre_pad = 0
        self.mod_scale = None
        self.model_download_path = None
        if self.model_path is None and self.name and shared.running_app() is not None:
            self.model_path = os.path.join(shared.app().paths.models_dir, self.name)
        if self.model_path and create_dirs:
            os.makedirs(self.model_path, exist_ok=True)

    def do_upscale(self, img: Image.Image, selected_model: Any) -> Image.Image:
        return img

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        """A1111: `do_upscale` up to three times until the size is reached, then Lanczos to it."""
        self.scale = scale
        dest_w, dest_h = int(img.width * scale // 8 * 8), int(img.height * scale // 8 * 8)
        for i in range(3):
            if img.width >= dest_w and img.height >= dest_h and (i > 0 or scale != 1):
                break
            if shared.running_app() is not None and shared.app().state.interrupted:
                break
            shape = img.size
            img = self.do_upscale(img, selected_model)
            if shape == img.size:
                break
        return img if img.size == (dest_w, dest_h) else img.resize((dest_w, dest_h), LANCZOS)

    def load_model(self, path: str) -> Any:
        return None

    def find_models(self, ext_filter: list[str] | None = None) -> list[str]:
        return modelloader.load_models(
            model_path=self.model_path or "", command_path=self.user_path, ext_filter=ext_filter
        )

    def update_status(self, prompt: str) -> None:
        print(f"\nextras: {prompt}", file=shared.progress_print_out)


class UpscalerData:
    name: str
    data_path: str | None
    scale: float = 4
    scaler: Upscaler | None = None

    def __init__(
        self,
        name: str,
        path: str | None,
        upscaler: Upscaler | None = None,
        scale: float | None = 4,
        model: Any = None,
        sha256: str | None = None,
    ) -> None:
        self.name = name
        self.data_path = path
        self.local_data_path = path
        self.scaler = upscaler
        self.scale = scale if scale is not None else 4
        self.model = model
        self.sha256 = sha256
        self.args = None

    def __repr__(self) -> str:
        return f"<UpscalerData name={self.name} path={self.data_path} scale={self.scale}>"


class RegistryUpscaler(Upscaler):
    """One entry of Sumi's upscaler registry behind A1111's `Upscaler` (what `shared.sd_upscalers`
    holds): `upscale` is the registry's, with its tiling, caching and interrupt."""

    def __init__(self, entry: UpscalerEntry) -> None:
        self.name = entry.folder or entry.name
        self.model_path = str(entry.path) if entry.path else None
        super().__init__()
        self.entry = entry
        self.scalers = [UpscalerData(entry.name, self.model_path, self, entry.scale)]

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        self.scale = scale
        return shared.app().upscalers.upscale(img, scale, self.entry.name)

    def do_upscale(self, img: Image.Image, selected_model: Any) -> Image.Image:
        """One pass at the model's own factor (what A1111's subclasses do)."""
        return shared.app().upscalers.model_pass(img, self.entry.name)

    def load_model(self, path: str) -> Any:
        """The spandrel ModelDescriptor of a model entry (A1111's subclasses return theirs)."""
        return shared.app().upscalers.load(self.entry)


class UpscalerNone(Upscaler):
    name = "None"

    def __init__(self, dirname: str | None = None) -> None:
        super().__init__()
        self.scalers = [UpscalerData("None", None, self)]

    def load_model(self, path: str) -> None:
        return None

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        return img


class UpscalerLanczos(Upscaler):
    name = "Lanczos"

    def __init__(self, dirname: str | None = None) -> None:
        super().__init__()
        self.scalers = [UpscalerData("Lanczos", None, self)]

    def do_upscale(self, img: Image.Image, selected_model: Any = None) -> Image.Image:
        return img.resize((int(img.width * self.scale), int(img.height * self.scale)), LANCZOS)

    def load_model(self, _: str) -> None:
        return None


class UpscalerNearest(Upscaler):
    name = "Nearest"

    def __init__(self, dirname: str | None = None) -> None:
        super().__init__()
        self.scalers = [UpscalerData("Nearest", None, self)]

    def do_upscale(self, img: Image.Image, selected_model: Any = None) -> Image.Image:
        return img.resize((int(img.width * self.scale), int(img.height * self.scale)), NEAREST)

    def load_model(self, _: str) -> None:
        return None


def sd_upscalers() -> list[UpscalerData]:
    """`shared.sd_upscalers` now: one UpscalerData per registry entry, in the registry's order."""
    builtin: dict[str, type[Upscaler]] = {
        "None": UpscalerNone,
        "Lanczos": UpscalerLanczos,
        "Nearest": UpscalerNearest,
    }
    app = shared.running_app()
    out: list[UpscalerData] = []
    for entry in app.upscalers.entries() if app is not None else BUILTIN:
        cls = builtin.get(entry.name) if entry.kind != "model" else None
        scaler = cls() if cls is not None else RegistryUpscaler(entry)
        out.extend(scaler.scalers[:1])
    return out
