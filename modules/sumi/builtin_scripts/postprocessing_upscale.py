"""Upscale (A1111's built-in Extras script `scripts/postprocessing_upscale.py`).

Scale by a factor (optionally capped by "Max side length") or scale to a width and height, with "Crop
to fit" centring the enlarged picture on the target size; Upscaler 1 enlarges, Upscaler 2 (when its
visibility is above 0) enlarges the same picture and is blended in. Upscaler 1 "None" leaves the
picture as it is, as in A1111. Infotext: `Postprocess upscale by` / `Postprocess upscale to`,
`Postprocess crop to`, `Max side length`, `Postprocess upscaler`, `Postprocess upscaler 2`. Upscalers
are the App's registry (None, Lanczos, Nearest, model files); an unknown name is a clear error naming
the choices. "Simple Upscale" (a factor and an upscaler) is for txt2img/img2img only, through opt
postprocessing_enable_in_main_ui.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import gradio as gr
from PIL import Image

from modules import scripts_postprocessing, shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.postprocessing.service import MAX_OUTPUT_PIXELS
from modules.sumi.services.settings.limits import IMAGE_SIDE_CEILING
from modules.ui_components import FormRow, InputAccordion, ToolButton

SWITCH = "\U000021c5"  # ⇅, A1111's switch_values_symbol
_cache: dict[tuple, Image.Image] = {}


def limit_size_by_one_dimension(w: float, h: float, limit: float) -> tuple[int, int]:
    """(w, h) scaled down so that the longer side is `limit` (0: no limit), as A1111."""
    if limit and h > w and h > limit:
        w, h = limit * w // h, limit
    elif limit and w > limit:
        w, h = limit, limit * h // w
    return int(w), int(h)


def _registry():
    return shared.app().upscalers


class ScriptPostprocessingUpscale(scripts_postprocessing.ScriptPostprocessing):
    name = "Upscale"
    order = 1000

    def ui(self) -> dict[str, Any]:
        names = _registry().names()
        selected_tab = gr.Number(value=0, visible=False)
        with InputAccordion(True, label="Upscale", elem_id="extras_upscale") as upscale_enabled:
            with FormRow():
                upscaler_1 = gr.Dropdown(
                    label="Upscaler 1", elem_id="extras_upscaler_1", choices=names, value=names[0]
                )
            with FormRow():
                upscaler_2 = gr.Dropdown(
                    label="Upscaler 2", elem_id="extras_upscaler_2", choices=names, value=names[0]
                )
                upscaler_2_visibility = gr.Slider(
                    minimum=0.0,
                    maximum=1.0,
                    step=0.001,
                    label="Upscaler 2 visibility",
                    value=0.0,
                    elem_id="extras_upscaler_2_visibility",
                )
            with FormRow(), gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab("Scale by", elem_id="extras_scale_by_tab") as tab_scale_by, gr.Row():
                    upscaling_resize = gr.Slider(
                        minimum=1.0,
                        maximum=8.0,
                        step=0.05,
                        label="Resize",
                        value=4,
                        elem_id="extras_upscaling_resize",
                        scale=4,
                    )
                    max_side_length = gr.Number(
                        label="Max side length",
                        value=0,
                        elem_id="extras_upscale_max_side_length",
                        info="If any of two sides of the image ends up larger than specified, will "
                        "downscale it to fit. 0 = no limit.",
                        step=8,
                        minimum=0,
                        precision=0,
                        min_width=160,
                        scale=1,
                    )
                with gr.Tab("Scale to", elem_id="extras_scale_to_tab") as tab_scale_to, FormRow():
                    with gr.Column(elem_id="upscaling_column_size", scale=4):
                        upscaling_resize_w = gr.Slider(
                            minimum=64,
                            maximum=8192,
                            step=8,
                            label="Width",
                            value=512,
                            elem_id="extras_upscaling_resize_w",
                        )
                        upscaling_resize_h = gr.Slider(
                            minimum=64,
                            maximum=8192,
                            step=8,
                            label="Height",
                            value=512,
                            elem_id="extras_upscaling_resize_h",
                        )
                    with gr.Column(
                        elem_id="upscaling_dimensions_row", scale=1, elem_classes="dimensions-tools"
                    ):
                        switch = ToolButton(value=SWITCH, elem_id="upscaling_res_switch_btn")
                        upscaling_crop = gr.Checkbox(
                            label="Crop to fit", value=True, elem_id="extras_upscaling_crop"
                        )

        switch.click(
            lambda w, h: (h, w),
            inputs=[upscaling_resize_w, upscaling_resize_h],
            outputs=[upscaling_resize_w, upscaling_resize_h],
            show_progress="hidden",
        )
        # set in the page, no round trip: a Generate clicked right after the tab reads the new mode
        tab_scale_by.select(fn=None, js="() => 0", inputs=[], outputs=[selected_tab])
        tab_scale_to.select(fn=None, js="() => 1", inputs=[], outputs=[selected_tab])
        upscaler_1.change(
            scale_from_name, inputs=[upscaler_1], outputs=[upscaling_resize], show_progress="hidden"
        )
        return {
            "upscale_enabled": upscale_enabled,
            "upscale_mode": selected_tab,
            "upscale_by": upscaling_resize,
            "max_side_length": max_side_length,
            "upscale_to_width": upscaling_resize_w,
            "upscale_to_height": upscaling_resize_h,
            "upscale_crop": upscaling_crop,
            "upscaler_1_name": upscaler_1,
            "upscaler_2_name": upscaler_2,
            "upscaler_2_visibility": upscaler_2_visibility,
        }

    def upscale(
        self,
        image: Image.Image,
        info: dict[str, Any],
        upscaler: str,
        upscale_mode: int,
        upscale_by: float,
        max_side_length: int,
        upscale_to_width: int,
        upscale_to_height: int,
        upscale_crop: bool,
    ) -> Image.Image:
        """One upscaler's result, as A1111's `ScriptPostprocessingUpscale.upscale`."""
        if upscale_mode == 1:
            upscale_by = max(upscale_to_width / image.width, upscale_to_height / image.height)
            info["Postprocess upscale to"] = f"{upscale_to_width}x{upscale_to_height}"
        else:
            info["Postprocess upscale by"] = upscale_by
            if max_side_length and max(*image.size) * upscale_by > max_side_length:
                upscale_mode, upscale_crop = 1, False
                upscale_to_width, upscale_to_height = limit_size_by_one_dimension(
                    image.width * upscale_by, image.height * upscale_by, max_side_length
                )
                upscale_by = max(upscale_to_width / image.width, upscale_to_height / image.height)
                info["Max side length"] = max_side_length
        _check_size(image, upscale_by)
        key = (
            hashlib.sha256(image.tobytes()).hexdigest(),
            image.size,
            upscaler,
            upscale_mode,
            upscale_by,
            upscale_to_width,
            upscale_to_height,
            upscale_crop,
        )
        cached = _cache.pop(key, None)
        image = cached if cached is not None else _registry().upscale(image, upscale_by, upscaler)
        _cache[key] = image
        while len(_cache) > max(0, int(shared.opts.upscaling_max_images_in_cache)):
            _cache.pop(next(iter(_cache)))
        if upscale_mode == 1 and upscale_crop:
            cropped = Image.new("RGB", (upscale_to_width, upscale_to_height))
            cropped.paste(
                image,
                box=(upscale_to_width // 2 - image.width // 2, upscale_to_height // 2 - image.height // 2),
            )
            image = cropped
            info["Postprocess crop to"] = f"{image.width}x{image.height}"
        return image

    def process_firstpass(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        upscale_enabled: bool = True,
        upscale_mode: int = 1,
        upscale_by: float = 2.0,
        max_side_length: int = 0,
        upscale_to_width: int | None = None,
        upscale_to_height: int | None = None,
        upscale_crop: bool = False,
        upscaler_1_name: str | None = None,
        upscaler_2_name: str | None = None,
        upscaler_2_visibility: float = 0.0,
    ) -> None:
        """Announce the size the picture is meant to reach, whether or not an upscaler is picked (A1111):
        the dataset scripts (focal crop, split) crop to it; the size is checked where it is used."""
        if int(upscale_mode or 0) == 1:
            pp.shared.target_width, pp.shared.target_height = upscale_to_width, upscale_to_height
        else:
            width, height = int(pp.image.width * float(upscale_by)), int(pp.image.height * float(upscale_by))
            pp.shared.target_width, pp.shared.target_height = limit_size_by_one_dimension(
                width, height, int(max_side_length or 0)
            )

    def process(
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        upscale_enabled: bool = True,
        upscale_mode: int = 1,
        upscale_by: float = 2.0,
        max_side_length: int = 0,
        upscale_to_width: int | None = None,
        upscale_to_height: int | None = None,
        upscale_crop: bool = False,
        upscaler_1_name: str | None = None,
        upscaler_2_name: str | None = None,
        upscaler_2_visibility: float = 0.0,
    ) -> None:
        if not upscale_enabled or _none(upscaler_1_name):
            return
        registry = _registry()
        first = registry.find(upscaler_1_name).name  # InvalidRequestError naming the choices
        second = None if _none(upscaler_2_name) else registry.find(upscaler_2_name).name
        visibility = float(upscaler_2_visibility or 0.0)
        args = (
            int(upscale_mode or 0),
            float(upscale_by if upscale_by is not None else 2.0),
            int(max_side_length or 0),
            int(upscale_to_width or pp.image.width),
            int(upscale_to_height or pp.image.height),
            bool(upscale_crop),
        )
        upscaled = self.upscale(pp.image, pp.info, first, *args)
        pp.info["Postprocess upscaler"] = first
        if shared.opts.use_upscaler_name_as_suffix:
            pp.nametags.append(first)
        if second is not None and second != "None" and visibility > 0:
            other = self.upscale(pp.image, pp.info, second, *args)
            if other.mode != upscaled.mode:
                other = other.convert(upscaled.mode)
            if other.size != upscaled.size:
                other = other.resize(upscaled.size, Image.Resampling.LANCZOS)
            upscaled = Image.blend(upscaled, other, visibility)
            pp.info["Postprocess upscaler 2"] = second
            if shared.opts.use_upscaler_name_as_suffix:
                pp.nametags.append(f"{second} {visibility}")
        pp.image = upscaled

    def image_changed(self) -> None:
        _cache.clear()


class ScriptPostprocessingUpscaleSimple(ScriptPostprocessingUpscale):
    """A1111's "Simple Upscale": a factor and an upscaler, for txt2img/img2img only (opt
    postprocessing_enable_in_main_ui); never shown in the Extras tab."""

    name = "Simple Upscale"
    order = 900
    main_ui_only = True

    def ui(self) -> dict[str, Any]:  # pyright: ignore[reportIncompatibleMethodOverride]
        names = _registry().names()
        with FormRow():
            upscaler_name = gr.Dropdown(label="Upscaler", choices=names, value=names[0])
            upscale_by = gr.Slider(minimum=0.05, maximum=8.0, step=0.05, label="Upscale by", value=2)
        return {"upscale_by": upscale_by, "upscaler_name": upscaler_name}

    def process_firstpass(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        upscale_by: float = 2.0,
        upscaler_name: str | None = None,
    ) -> None:
        pp.shared.target_width = int(pp.image.width * float(upscale_by))
        pp.shared.target_height = int(pp.image.height * float(upscale_by))

    def process(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        pp: scripts_postprocessing.PostprocessedImage,
        upscale_by: float = 2.0,
        upscaler_name: str | None = None,
    ) -> None:
        if _none(upscaler_name):
            return
        name = _registry().find(upscaler_name).name
        pp.image = self.upscale(pp.image, pp.info, name, 0, float(upscale_by), 0, 0, 0, False)
        pp.info["Postprocess upscaler"] = name


def _check_size(image: Image.Image, upscale_by: float) -> None:
    """Refuse a result under 8 pixels a side, or one too big to hold, before enlarging anything."""
    width, height = int(image.width * upscale_by // 8 * 8), int(image.height * upscale_by // 8 * 8)
    if width < 8 or height < 8:
        raise InvalidRequestError(
            f"upscaling {image.width}x{image.height} by {upscale_by:g} leaves less than 8 pixels a side"
        )
    if width * height > MAX_OUTPUT_PIXELS or max(width, height) > IMAGE_SIDE_CEILING:
        raise InvalidRequestError(
            f"upscaling {image.width}x{image.height} by {upscale_by:g} would make {width}x{height}; Extras "
            f"results may hold at most {MAX_OUTPUT_PIXELS // (1024 * 1024)} megapixels"
        )


def _none(name: Any) -> bool:
    return name is None or str(name).strip() in ("", "None")


def scale_from_name(upscaler_name: str) -> Any:
    """A1111's opt set_scale_by_when_changing_upscaler: "4x-UltraSharp" sets Scale by to 4."""
    if not shared.opts.set_scale_by_when_changing_upscaler:
        return gr.update()
    match = re.search(r"(\d)[xX]|[xX](\d)", upscaler_name or "")
    return gr.update(value=int(match.group(1) or match.group(2))) if match else gr.update()
