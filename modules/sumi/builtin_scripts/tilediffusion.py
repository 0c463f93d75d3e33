"""Tiled Diffusion (the multidiffusion-upscaler extension's script, built in): txt2img and img2img drawn on
overlapping latent tiles blended every step (MultiDiffusion or Mixture of Diffusers, engine.tiled_diffusion),
so large images fit the memory of one tile batch and stay one picture.

Its args are the extension's, in the extension's order, so `alwayson_scripts: {"Tiled Diffusion": {"args":
[true, "MultiDiffusion", false, true, 1024, 1024, 96, 96, 48, 4, "None", 2.0, ...]}}` works as with the
extension: enabled, method, overwrite size (txt2img), keep input size (img2img), image width and height,
latent tile width, height, overlap and batch size, upscaler and scale factor (img2img), then noise
inversion (enabled, steps, retouch, renoise strength, kernel), ControlNet tensors on the CPU, region
control (enabled, draw background, causal layers) and then the regions, ten args each (enable, x, y, w, h,
prompt, negative prompt, type, feather, seed; `support.tiled_regions`). Noise inversion (img2img) starts
the redraw from the picture's own inverted noise (engine.noise_inversion), with the Euler sampler as the
extension switches to. The settings go into the infotext as the extension writes them (`Tiled Diffusion:
{"Method": ..., "Tile tile width": ..., "NoiseInv": true, ..., "Region control": {...}}`) and paste back.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

import modules.scripts as scripts
from modules import shared
from modules.sumi.builtin_scripts.support import tiled_regions
from modules.sumi.builtin_scripts.support.img2img import number, switched_on, upscaler_named, whole
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.noise_inversion import InversionCache, InversionSettings, retouch_mask
from modules.sumi.engine.tiled_diffusion import (
    METHODS,
    NoiseInversion,
    TiledDiffusion,
    TileSettings,
    tile_boxes,
)
from modules.sumi.engine.tiled_regions import BLEND_MODES

TITLE = "Tiled Diffusion"
INFOTEXT_KEY = "Tiled Diffusion"
NOISE_INVERSION = 12  # the arg index of "Enable Noise Inversion"; its four settings follow
_INVERSIONS = InversionCache()  # the last inversion, for the next job on the same picture (both tabs)
REGION_CONTROL = 18  # the arg index of "Enable Control"; the regions' groups start 3 later
_DRAWN = {"enable", "x", "y", "w", "h", "blend_mode"}  # the region fields the canvas picture shows


def _from_infotext(key: str, default: Any) -> Any:
    def read(d: dict) -> Any:
        try:
            return json.loads(d[INFOTEXT_KEY]).get(key, default)
        except (KeyError, TypeError, ValueError, AttributeError):
            return gr.skip()

    return read


def _region_control(d: dict) -> dict | None:
    try:
        found = json.loads(d[INFOTEXT_KEY]).get("Region control")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def _region_field(number_: int, field: int) -> Any:
    """Pastes one field of region `number_` from the infotext (the default when the region is absent)."""
    name, default = tiled_regions.FIELDS[field], tiled_regions.DEFAULT[field]

    def read(d: dict) -> Any:
        found = _region_control(d)
        if found is None:
            return gr.skip()
        region = found.get(f"Region {number_}")
        return region.get(name, default) if isinstance(region, dict) else default

    return read


def _config_folders() -> list[Path]:
    """Where region configs are saved (the data folder's region_configs/) and also read from (the
    extension's own folder, for configs saved under A1111)."""
    from modules.paths import a1111_paths

    folders = a1111_paths()
    extension = folders.extensions_dir / "multidiffusion-upscaler-for-automatic1111" / "region_configs"
    return [folders.data_dir / "region_configs", extension]


def _save_regions(name: str, *fields: Any) -> str:
    try:
        return html.escape(tiled_regions.save_config(_config_folders()[0], name, list(fields)))
    except (ValueError, InvalidRequestError, OSError) as exc:
        return f'<span class="error">{html.escape(str(exc))}</span>'


def _load_regions(name: str, *fields: Any) -> list[Any]:
    try:
        values, message = tiled_regions.load_config(_config_folders(), name)
    except ValueError as exc:
        return [*fields, f'<span class="error">{html.escape(str(exc))}</span>']
    return [*values, html.escape(message)]


def _inversion_ui(uid: Any, is_img2img: bool) -> list[Any]:
    """The extension's Noise Inversion accordion (img2img): enable, steps, retouch, renoise strength and
    kernel, with its element ids."""
    with gr.Accordion("Noise Inversion", open=True, visible=is_img2img, elem_id=uid("noise-inversion")):
        with gr.Row():
            enable = gr.Checkbox(False, label="Enable Noise Inversion", elem_id=uid("noise-inverse"))
            steps = gr.Slider(
                1, 200, step=1, value=10, label="Inversion steps", elem_id=uid("noise-inverse-steps")
            )
        gr.HTML(
            "<p>Try it on a small picture first: the defaults want a denoising strength of 0.6 or less.</p>"
        )
        with gr.Row():
            retouch = gr.Slider(
                1, 100, step=0.1, value=1, label="Retouch", elem_id=uid("noise-inverse-retouch")
            )
            strength = gr.Slider(
                0,
                2,
                step=0.01,
                value=1,
                label="Renoise strength",
                elem_id=uid("noise-inverse-renoise-strength"),
            )
            kernel = gr.Slider(
                2,
                512,
                step=1,
                value=64,
                label="Renoise kernel size",
                elem_id=uid("noise-inverse-renoise-kernel"),
            )
    return [enable, steps, retouch, strength, kernel]


def _one_region(tab: str, i: int) -> list[Any]:
    """Region i's ten controls in the extension's order and with its element ids."""
    enable_, x0, y0, w0, h0, _, _, mode, feather0, seed0 = tiled_regions.DEFAULT
    with gr.Accordion(f"Region {i + 1}", open=False, elem_id=f"MD-accordion-{tab}-{i}"):
        with gr.Row():
            enable = gr.Checkbox(enable_, label=f"Enable Region {i + 1}", elem_id=f"MD-bbox-{tab}-{i}-enable")
            blend = gr.Dropdown(
                list(BLEND_MODES), value=mode, label="Type", elem_id=f"MD-{tab}-{i}-blend-mode"
            )
            feather = gr.Slider(
                0, 1, step=0.05, value=feather0, label="Feather", elem_id=f"MD-{tab}-{i}-feather"
            )
        with gr.Row():
            x = gr.Slider(0.0, 1.0, step=0.0001, value=x0, label="x", elem_id=f"MD-{tab}-{i}-x")
            y = gr.Slider(0.0, 1.0, step=0.0001, value=y0, label="y", elem_id=f"MD-{tab}-{i}-y")
        with gr.Row():
            w = gr.Slider(0.0, 1.0, step=0.0001, value=w0, label="w", elem_id=f"MD-{tab}-{i}-w")
            h = gr.Slider(0.0, 1.0, step=0.0001, value=h0, label="h", elem_id=f"MD-{tab}-{i}-h")
        prompt = gr.Textbox(
            show_label=False,
            placeholder="Prompt, appended to the main prompt",
            max_lines=2,
            elem_id=f"MD-{tab}-{i}-prompt",
        )
        negative = gr.Textbox(
            show_label=False,
            placeholder="Negative prompt, appended to the main one",
            max_lines=1,
            elem_id=f"MD-{tab}-{i}-neg-prompt",
        )
        seed = gr.Number(seed0, label="Seed (-1: random)", precision=0, elem_id=f"MD-{tab}-{i}-seed")
    return [enable, x, y, w, h, prompt, negative, blend, feather, seed]


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
            with gr.Row(visible=False) as size_row:  # shown while "Overwrite image size" is ticked
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
            overwrite_size.change(
                lambda on: gr.update(visible=bool(on)), overwrite_size, size_row, show_progress="hidden"
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
            inversion = _inversion_ui(uid, is_img2img)
            later = [*inversion, gr.State(False)]  # the extension's "ControlNet tensors on the CPU"
            region_control, region_fields = self._region_ui(tab, image_width, image_height)
        self.infotext_fields = [
            (enabled, lambda d: INFOTEXT_KEY in d),
            (method, _from_infotext("Method", METHODS[0])),
            (tile_width, _from_infotext("Tile tile width", 96)),
            (tile_height, _from_infotext("Tile tile height", 96)),
            (overlap, _from_infotext("Tile Overlap", 48)),
            (batch_size, _from_infotext("Tile batch size", 4)),
        ]
        self.infotext_fields += [
            (inversion[0], _from_infotext("NoiseInv", False)),
            (inversion[1], _from_infotext("NoiseInv Steps", 10)),
            (inversion[2], _from_infotext("NoiseInv Retouch", 1.0)),
            (inversion[3], _from_infotext("NoiseInv Renoise strength", 1.0)),
            (inversion[4], _from_infotext("NoiseInv Kernel size", 64)),
            (region_control[0], lambda d: _region_control(d) is not None),
            (region_control[1], _from_infotext("Draw background", False)),
        ]
        for index, component in enumerate(region_fields):
            number_, field = divmod(index, len(tiled_regions.FIELDS))
            self.infotext_fields.append((component, _region_field(number_ + 1, field)))
        self.paste_field_names = [INFOTEXT_KEY]
        return [
            enabled, method, overwrite_size, keep_input_size, image_width, image_height,
            tile_width, tile_height, overlap, batch_size, upscaler, scale_factor, *later,
            *region_control, *region_fields,
        ]  # fmt: skip

    def _region_ui(self, tab: str, image_width: Any, image_height: Any) -> tuple[list[Any], list[Any]]:
        """The extension's Region Prompt Control: enable, draw background, and `MAX_REGIONS` regions, with
        a picture of the enabled regions over the canvas (the job's size, or the overwritten size)."""
        with gr.Accordion("Region Prompt Control", open=False, elem_id=f"MD-bbox-control-{tab}"):
            with gr.Row():
                enable = gr.Checkbox(False, label="Enable Control", elem_id=f"MD-{tab}-enable-bbox-control")
                background = gr.Checkbox(
                    False, label="Draw full canvas background", elem_id=f"MD-{tab}-draw-background"
                )
                causal = gr.State(False)  # the extension's hidden "Causalize layers" (unused there too)
            gr.Markdown("Drag on the canvas to place the chosen region, or set its sliders below.")
            gr.Radio(  # read by tiledRegions.js only: not a job arg
                [str(i + 1) for i in range(tiled_regions.MAX_REGIONS)],
                value="1",
                label="Region to draw",
                interactive=True,
                elem_id=f"MD-{tab}-draw-region",
            )
            preview = gr.HTML(tiled_regions.preview_svg([], 1024, 1024), elem_id=f"MD-{tab}-region-preview")
            with gr.Row():
                config_name = gr.Textbox(
                    "config.json", label="Custom Config File", elem_id=f"MD-{tab}-cfg-name"
                )
                save = gr.Button("💾 Save", elem_id=f"MD-{tab}-cfg-save")
                load = gr.Button("⚙️ Load", elem_id=f"MD-{tab}-cfg-load")
            config_tip = gr.HTML("", elem_id=f"MD-{tab}-cfg-tip")
            fields: list[Any] = []
            for i in range(tiled_regions.MAX_REGIONS):
                fields += _one_region(tab, i)
        save.click(_save_regions, [config_name, *fields], config_tip, show_progress="hidden")
        load.click(_load_regions, [config_name, *fields], [*fields, config_tip], show_progress="hidden")
        size = list(self._size.get(tab) or (image_width, image_height))
        per_region = len(tiled_regions.FIELDS)
        drawn = [c for i, c in enumerate(fields) if tiled_regions.FIELDS[i % per_region] in _DRAWN]
        picture = self._picture if tab == "i2i" else None
        sources = [*size, *([picture] if picture is not None else [])]
        gr.on(  # one event for every control the picture shows (not per keystroke of the prompts)
            [c.change for c in [*drawn, *sources]],
            lambda *v: tiled_regions.preview_svg(
                list(v[len(sources) :]), v[0], v[1], v[2] if len(sources) == 3 else None
            ),
            inputs=[*sources, *fields],
            outputs=preview,
            show_progress="hidden",
        )
        return [enable, background, causal], fields

    def __init__(self) -> None:
        super().__init__()
        self._size: dict[str, tuple[Any, Any]] = {}
        self._pending: dict[str, Any] = {}
        self._picture: Any = None  # img2img's picture: the region preview draws over it
        self.on_after_component(self._note_picture, elem_id="img2img_image")
        for tab in ("txt2img", "img2img"):
            for side in ("width", "height"):
                self.on_after_component(self._note_size(tab, side), elem_id=f"{tab}_{side}")

    def _note_picture(self, event: Any) -> None:
        self._picture = event.component

    def _note_size(self, tab: str, side: str) -> Any:
        """Keeps the tab's width/height sliders, so the region picture has the canvas' shape."""

        def note(event: Any) -> None:
            key = "t2i" if tab == "txt2img" else "i2i"
            self._pending[f"{key}-{side}"] = event.component
            if f"{key}-width" in self._pending and f"{key}-height" in self._pending:
                self._size[key] = (self._pending[f"{key}-width"], self._pending[f"{key}-height"])

        return note

    def process(self, p: Any, enabled: Any = False, *args: Any) -> None:
        if not enabled:
            return
        values = [enabled, *args]
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
        regions, draw_background = self._regions(values)
        if regions:
            info.update(tiled_regions.infotext(regions, draw_background))
        inversion = self._inversion(p, values, info)
        p.engine_extensions["tiled_diffusion"] = TiledDiffusion(
            settings, [r for _, r in regions], draw_background, inversion
        )
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
    def _inversion(p: Any, values: list[Any], info: dict[str, Any]) -> NoiseInversion | None:
        """The extension's noise inversion (img2img only): its settings, the picture's detail map for
        renoising, and the Euler sampler it needs."""
        if len(values) <= NOISE_INVERSION or not switched_on(values[NOISE_INVERSION]):
            return None
        if not getattr(p, "init_images", None):
            raise InvalidRequestError(
                f"{TITLE}: Noise Inversion redraws an img2img picture; turn it off in txt2img"
            )
        steps, retouch, strength, kernel = [
            *values[NOISE_INVERSION + 1 : NOISE_INVERSION + 5],
            10,
            1.0,
            1.0,
            64,
        ][:4]
        settings = InversionSettings(
            whole(steps, "inversion steps", TITLE, 1, 200), number(retouch, "retouch", TITLE, 1, 100),
            number(strength, "renoise strength", TITLE, 0, 2), whole(kernel, "renoise kernel size", TITLE, 2, 512),
        )  # fmt: skip
        detail = None
        if settings.renoise_strength > 0:
            detail = retouch_mask(np.asarray(p.init_images[0].convert("L")), settings.renoise_kernel)
        if p.sampler_name != "Euler":
            print(f"[{TITLE}] Noise Inversion samples with Euler (the job asked for {p.sampler_name})")
            p.sampler_name = "Euler"
        info.update({
            "NoiseInv": True, "NoiseInv Steps": settings.steps, "NoiseInv Retouch": settings.retouch,
            "NoiseInv Renoise strength": settings.renoise_strength, "NoiseInv Kernel size": settings.renoise_kernel,
        })  # fmt: skip
        key = (
            p.sd_model_hash,
            getattr(p, "sd_model_name", None),
            tuple(getattr(p, "all_prompts", None) or []),
        )
        return NoiseInversion(settings, detail, _INVERSIONS, key)

    @staticmethod
    def _regions(values: list[Any]) -> tuple[list[tuple[int, Any]], bool]:
        """The enabled regions when region control is on (none: plain tiling), and whether the grid draws
        the background under them."""
        if len(values) <= REGION_CONTROL or not switched_on(values[REGION_CONTROL]):
            return [], True
        draw_background = len(values) > REGION_CONTROL + 1 and switched_on(values[REGION_CONTROL + 1])
        regions = tiled_regions.read_regions(list(values[REGION_CONTROL + 3 :]), TITLE)
        return regions, draw_background or not regions

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
