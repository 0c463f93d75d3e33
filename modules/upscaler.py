"""A1111's `modules.upscaler`: the classes extensions use to describe upscalers.

Sumi has no upscaler models (`shared.sd_upscalers` is empty); `UpscalerData` and the `Upscaler` base
keep A1111's fields so extensions can name and type them. `Upscaler.upscale` resizes with Lanczos
until a subclass's `do_upscale` says otherwise.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

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
        self.scalers = []

    def do_upscale(self, img: Image.Image, selected_model: Any) -> Image.Image:
        return img

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        self.scale = scale
        size = (int(img.width * scale // 8 * 8), int(img.height * scale // 8 * 8))
        img = self.do_upscale(img, selected_model)
        return img if img.size == size else img.resize(size, LANCZOS)

    def load_model(self, path: str) -> None:
        pass

    def find_models(self, ext_filter: list[str] | None = None) -> list[str]:
        return []


class UpscalerData:
    def __init__(
        self,
        name: str,
        path: str | None,
        upscaler: Upscaler | None = None,
        scale: float = 4,
        model: Any = None,
    ) -> None:
        self.name = name
        self.data_path = path
        self.local_data_path = path
        self.scaler = upscaler
        self.scale = scale
        self.model = model
        self.args = None

    def __repr__(self) -> str:
        return f"<UpscalerData name={self.name} path={self.data_path} scale={self.scale}>"


class UpscalerNone(Upscaler):
    name = "None"

    def __init__(self, dirname: str | None = None) -> None:
        super().__init__()
        self.scalers = [UpscalerData("None", None, self)]

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        return img
