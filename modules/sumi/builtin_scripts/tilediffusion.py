"""Tiled Diffusion (the multidiffusion-upscaler extension's script, built in): txt2img and img2img drawn on
overlapping latent tiles blended every step (MultiDiffusion or Mixture of Diffusers, engine.tiled_diffusion),
so large images fit the memory of one tile batch and stay one picture.

Its args are the extension's, in the extension's order, so `alwayson_scripts: {"Tiled Diffusion": {"args":
[true, "MultiDiffusion", false, true, 1024, 1024, 96, 96, 48, 4, "None", 2.0, ...]}}` works as with the
extension: enabled, method, overwrite size (txt2img), keep input size (img2img), image width and height,
latent tile width, height, overlap and batch size, upscaler and scale factor (img2img), then noise
inversion (enabled, steps, retouch, renoise strength, kernel), ControlNet tensors on the CPU, region
control (enabled, draw background, causal layers) and the regions. Noise inversion and region control are
not built yet: asking for them is a clear error, never ignored. The settings go into the infotext as the
extension writes them (`Tiled Diffusion: {"Method": ..., "Tile tile width": ...}`) and paste back.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

import modules.scripts as scripts
from modules import shared
from modules.sumi.builtin_scripts.support.img2img import number, switched_on, upscaler_named, whole
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.tiled_diffusion import METHODS, TiledDiffusion, TileSettings, tile_boxes

TITLE = "Tiled Diffusion"
INFOTEXT_KEY = "Tiled Diffusion"
_NOT_YET = {12: "Noise Inversion", 18: "Region Prompt Control"}  # arg index -> feature not built yet


def _from_infotext(key: str, default: Any) -> Any:
    def read(d: dict) -> Any:
        try:
            return json.loads(d[INFOTEXT_KEY]).get(key, default)
        except (KeyError, TypeError, ValueError, AttributeError):
            return gr.skip()

    return read


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        from modules.ui_components import InputAccordion

        tab = "i2i" if is_img2img else "t2i"

        def uid(name: str) -> str:
            return f"MD-{tab}-{name}"

        with InputAccordion(False, label=TITLE, elem_id=uid("enabled")) as enabled:
            with gr.Row():
                overwrite_size = gr.Checkbox(
                    False,
                    label="Overwrite image size",
                    visible=not is_img2img,
                    elem_id=uid("overwrite-image-size"),
                )
                keep_input_size = gr.Checkbox(
                    True, label="Keep input image size", visible=is_img2img, elem_id=uid("keep-input-size")
                )
            with gr.Row():
                image_width = gr.Slider(
                    256, 16384, step=16, value=1024, label="Image width", elem_id=f"MD-overwrite-width-{tab}"
                )
                image_height = gr.Slider(
                    256,
                    16384,
                    step=16,
                    value=1024,
                    label="Image height",
                    elem_id=f"MD-overwrite-height-{tab}",
                )
            method = gr.Dropdown(
                list(METHODS),
                value=METHODS[1] if is_img2img else METHODS[0],
                label="Method",
                elem_id=uid("method"),
            )
            with gr.Row():
                tile_width = gr.Slider(
                    16, 256, step=16, value=96, label="Latent tile width", elem_id=uid("latent-tile-width")
                )
                tile_height = gr.Slider(
                    16, 256, step=16, value=96, label="Latent tile height", elem_id=uid("latent-tile-height")
                )
            with gr.Row():
                overlap = gr.Slider(
                    0,
                    256,
                    step=4,
                    value=8 if is_img2img else 48,
                    label="Latent tile overlap",
                    elem_id=uid("latent-tile-overlap"),
                )
                batch_size = gr.Slider(
                    1,
                    8,
                    step=1,
                    value=4,
                    label="Latent tile batch size",
                    elem_id=uid("latent-tile-batch-size"),
                )
            with gr.Row(visible=is_img2img):
                upscaler = gr.Dropdown(
                    [d.name for d in shared.sd_upscalers],
                    value="None",
                    label="Upscaler",
                    elem_id=uid("upscaler-index"),
                )
                scale_factor = gr.Slider(
                    1.0, 8.0, step=0.05, value=2.0, label="Scale Factor", elem_id=uid("upscaler-factor")
                )
            # The extension's later args (noise inversion, region control) keep their places, off.
            later = [gr.State(value) for value in (False, 10, 1.0, 1.0, 64, False, False, False, False)]
        self.infotext_fields = [
            (enabled, lambda d: INFOTEXT_KEY in d),
            (method, _from_infotext("Method", METHODS[0])),
            (tile_width, _from_infotext("Tile tile width", 96)),
            (tile_height, _from_infotext("Tile tile height", 96)),
            (overlap, _from_infotext("Tile Overlap", 48)),
            (batch_size, _from_infotext("Tile batch size", 4)),
        ]
        self.paste_field_names = [INFOTEXT_KEY]
        return [
            enabled, method, overwrite_size, keep_input_size, image_width, image_height,
            tile_width, tile_height, overlap, batch_size, upscaler, scale_factor, *later,
        ]  # fmt: skip

    def process(self, p: Any, enabled: Any = False, *args: Any) -> None:
        if not enabled:
            return
        values = [enabled, *args]
        for index, feature in _NOT_YET.items():
            if len(values) > index and switched_on(values[index]):
                raise InvalidRequestError(f"{TITLE}: {feature} is not available in Sumi yet; leave it off")
        defaults = [True, METHODS[0], False, True, 1024, 1024, 96, 96, 48, 4, "None", 2.0]
        values += defaults[len(values) :]
        (
            _,
            method,
            overwrite_size,
            keep_input_size,
            width,
            height,
            tile_w,
            tile_h,
            overlap,
            batch,
            upscaler,
            scale,
        ) = values[:12]
        try:
            settings = TileSettings(
                str(method), whole(tile_w, "tile width", TITLE, 1, 4096), whole(tile_h, "tile height", TITLE, 1, 4096),
                whole(overlap, "overlap", TITLE, 0, 4096), whole(batch, "tile batch size", TITLE, 1, 64),
            )  # fmt: skip
        except ValueError as exc:
            raise InvalidRequestError(f"{TITLE}: {exc}") from None
        info: dict[str, Any] = {
            "Method": settings.method,
            "Tile tile width": settings.tile_width,
            "Tile tile height": settings.tile_height,
            "Tile Overlap": settings.overlap,
            "Tile batch size": settings.batch_size,
        }
        if getattr(p, "init_images", None):
            self._canvas_img2img(
                p, info, str(upscaler), number(scale, "scale factor", TITLE, 1.0, 8.0), bool(keep_input_size)
            )
        elif overwrite_size:
            p.width = whole(width, "image width", TITLE, 64, 16384)
            p.height = whole(height, "image height", TITLE, 64, 16384)
        p.engine_extensions["tiled_diffusion"] = TiledDiffusion(settings)
        p.extra_generation_params[INFOTEXT_KEY] = info
        tiles = len(
            tile_boxes(
                p.width // 8, p.height // 8, settings.tile_width, settings.tile_height, settings.overlap
            )
        )
        print(
            f"[{TITLE}] {settings.method}: {tiles} tile(s) of {settings.tile_width}x{settings.tile_height} latent pixels"
        )

    @staticmethod
    def _canvas_img2img(p: Any, info: dict, upscaler: str, scale: float, keep_input_size: bool) -> None:
        """The extension's img2img canvas: the picture upscaled first (when an upscaler is chosen), and the
        job drawn at the picture's size (keep input size) or the job's size times the scale."""
        data = upscaler_named(upscaler, shared.sd_upscalers, TITLE)
        if data.name != "None" and data.scaler is not None:
            upscaled = data.scaler.upscale(p.init_images[0], scale, data.data_path)
            p.init_images = [upscaled for _ in p.init_images]
            info["Upscaler"], info["Upscale factor"] = data.name, scale
        if keep_input_size:
            p.width, p.height = p.init_images[0].width, p.init_images[0].height
            info["Keep input size"] = True
        elif data.name != "None":
            p.width, p.height = int(scale * p.width), int(scale * p.height)
