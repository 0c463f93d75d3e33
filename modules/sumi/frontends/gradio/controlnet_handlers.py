"""The ControlNet accordion's handlers, free of layout: model lists, preprocessor sliders, the
preprocessor preview, a blank canvas, and the units a Generate click turns into.

Each unit sends the same values to Generate, in the order of `UnitValues`; `units_from_values` turns
the flat list of every unit's values into `ControlNetUnit`s (checked by `unit_from_dict`, so the UI and
the API accept and refuse the same things).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import gradio as gr
import numpy as np
import pandas as pd

from modules.sumi.engine.controlnet.control import CONTROL_MODES
from modules.sumi.engine.controlnet.image_fit import ResizeMode, pixel_perfect_resolution
from modules.sumi.engine.controlnet.preprocessors import (
    RESOLUTION,
    Slider,
    get_preprocessor,
    list_preprocessors,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.frontends.gradio import results
from modules.sumi.services.controlnet.control_types import ALL, select_control_type
from modules.sumi.services.controlnet.models import NONE
from modules.sumi.services.controlnet.units import ControlNetUnit, decode_image, unit_from_dict
from modules.sumi.services.controlnet.weight_types import (
    WEIGHT_TYPES,
    block_parts,
    block_weights,
)

if TYPE_CHECKING:
    from modules.sumi.app import App

# where a unit's control image comes from (the input tabs' ids)
IMAGE, CANVAS, BATCH, MERGE = "image", "canvas", "batch", "merge"
RESIZE_MODES = tuple(m.value for m in ResizeMode)
DEFAULT_RESIZE_MODE = ResizeMode.CROP_AND_RESIZE.value
DEFAULT_CONTROL_MODE = CONTROL_MODES[0]
DEFAULT_CANVAS_SIZE = 512
RESOLUTION_LABEL = "Preprocessor Resolution"
# Shown in an unused threshold slider; the preprocessor ignores its value.
UNUSED_THRESHOLD = Slider("Threshold", 0, 1, 0.5, 0.01)


@dataclass
class UnitValues:
    """One unit's controls as Generate receives them, in order (sliders send floats)."""

    enabled: bool = False
    source: str = IMAGE
    image: np.ndarray | None = None
    canvas: dict[str, Any] | None = None
    low_vram: bool = False
    pixel_perfect: bool = False
    module: str = "none"
    model: str = NONE
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    processor_res: float = RESOLUTION.default
    threshold_a: float = -1
    threshold_b: float = -1
    resize_mode: str = DEFAULT_RESIZE_MODE
    control_mode: str = DEFAULT_CONTROL_MODE
    hr_option: str = "Both"  # sd-webui-controlnet's "Hires-Fix Option" (txt2img)
    union_control_type: str = "Unknown"  # ControlNet Union models; "Unknown": the preprocessor's kind
    batch_images: str = ""  # the Batch tab: a folder of pictures, one job each (inside the data folder)
    output_dir: str = ""  # the Batch tab: where the results go ("": saved as usual)
    merge_files: list[Any] | None = None  # the Multi-Inputs tab: uploaded pictures used together
    effective_region_mask: np.ndarray | None = None  # white: where the unit acts (None: everywhere)
    advanced_weighting: str = ""  # "Weights": one per level, e.g. "[1, 0.5, ...]" ("": the weight slider)


UNIT_INPUTS = tuple(f.name for f in fields(UnitValues))


# -- model list ----------------------------------------------------------------------------------------
def preprocessor_labels() -> list[str]:
    return [p.label for p in list_preprocessors()]


def active_family(app: App) -> str | None:
    """The loaded checkpoint's family ("SD1", "SD2", "SDXL"), None while no model is loaded."""
    active = app.models.active
    return active.sd.family if active is not None else None


def model_choices(app: App) -> list[str]:
    """The Model choices: "None", then the ControlNets that fit the loaded checkpoint (every one while
    no checkpoint is loaded)."""
    return app.controlnet.models.names_for_family(active_family(app))


def refresh_model_dropdowns(
    app: App, *current: str | None, rescan: bool = False
) -> tuple[dict[str, Any], ...] | dict[str, Any]:
    """The 🔄 button (rescan) and opening the accordion (the checkpoint may have changed): every unit's
    dropdown is updated from one listing (one output: one update, as Gradio expects)."""
    if rescan:
        app.controlnet.models.refresh()
    choices = model_choices(app)
    updates = tuple(gr.update(choices=choices, value=c if c in choices else NONE) for c in current)
    return updates if len(updates) != 1 else updates[0]


def control_type_changed(app: App, control_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Control Type → (preprocessor dropdown, model dropdown): the type's choices and defaults, the
    models limited to the loaded checkpoint's family as the Model list always is."""
    found = select_control_type(control_type or ALL, model_choices(app))
    return (
        gr.update(choices=found.module_list, value=found.default_option),
        gr.update(choices=found.model_list, value=found.default_model),
    )


# -- preprocessor sliders ------------------------------------------------------------------------------
def slider_update(
    slider: Slider | None, keep: float | None = None, label: str | None = None
) -> dict[str, Any]:
    """A threshold/resolution slider for a preprocessor: hidden when unused; `keep` is kept when it is
    inside the new range (the resolution), else the preprocessor's default is set."""
    if slider is None:
        return gr.update(visible=False)
    value = keep if keep is not None and slider.minimum <= keep <= slider.maximum else slider.default
    return gr.update(
        visible=True,
        label=label or slider.label,
        minimum=slider.minimum,
        maximum=slider.maximum,
        step=slider.step,
        value=value,
    )


def preprocessor_changed(module: str, pixel_perfect: bool, resolution: float | None) -> tuple[Any, Any, Any]:
    """(resolution, threshold A, threshold B) for a newly chosen preprocessor; the resolution is
    hidden too under Pixel Perfect, which computes it. Nothing else of the unit changes."""
    try:
        preprocessor = get_preprocessor(module or "none")
    except InvalidRequestError:
        return gr.update(visible=False), gr.update(visible=False), gr.update(visible=False)
    res = preprocessor.resolution if not pixel_perfect else None
    return (
        slider_update(res, resolution, RESOLUTION_LABEL) if res is not None else gr.update(visible=False),
        slider_update(preprocessor.threshold_a),
        slider_update(preprocessor.threshold_b),
    )


def pixel_perfect_changed(module: str, pixel_perfect: bool) -> dict[str, Any]:
    """Pixel Perfect hides the resolution slider (the value is computed); unticking shows it again."""
    try:
        uses = get_preprocessor(module or "none").uses_resolution
    except InvalidRequestError:
        uses = False
    return gr.update(visible=uses and not pixel_perfect)


# -- images --------------------------------------------------------------------------------------------
def control_image(source: str, image: Any, canvas: Any) -> Any:
    """The unit's image: the uploaded one, or the canvas drawing (its composite) on the Canvas tab."""
    if source == CANVAS:
        return canvas.get("composite") if isinstance(canvas, dict) else None
    if source in (BATCH, MERGE):
        return None  # the pictures are read from the folder (one per job) or the uploads (together)
    return image


def blank_canvas(width: float, height: float) -> dict[str, Any]:
    """A white canvas value for the Sketchpad (no layers drawn yet)."""
    w, h = int(width or DEFAULT_CANVAS_SIZE), int(height or DEFAULT_CANVAS_SIZE)
    white = np.full((h, w, 3), 255, np.uint8)
    return {"background": white, "layers": [], "composite": white}


def create_canvas(width: float, height: float) -> tuple[Any, Any, str, Any]:
    """📝 → Create new canvas: (canvas value, input tabs on Canvas, source, canvas size panel hidden)."""
    return blank_canvas(width, height), gr.Tabs(selected=CANVAS), CANVAS, gr.update(visible=False)


# -- preview -------------------------------------------------------------------------------------------
def detect_preview(
    app: App,
    module: str,
    image: np.ndarray,
    processor_res: float,
    threshold_a: float,
    threshold_b: float,
    pixel_perfect: bool = False,
    target: tuple[float, float] | None = None,
    resize_mode: str = DEFAULT_RESIZE_MODE,
) -> np.ndarray:
    """The preprocessor's map for one image, as sd-webui-controlnet's 💥 computes it: at the unit's
    resolution, or under Pixel Perfect at the resolution that fits the generation size `target` (w, h)."""
    if not pixel_perfect or target is None:
        return app.controlnet.detect(module, [image], processor_res, threshold_a, threshold_b)[0].map
    width, height = target
    resolution = pixel_perfect_resolution(image.shape[:2], (int(height), int(width)), resize_mode)
    return app.controlnet.detect(
        module, [image], resolution, threshold_a, threshold_b, exact_resolution=True
    )[0].map


def run_preview(
    app: App,
    index: int,
    module: str,
    source: str,
    image: Any,
    canvas: Any,
    processor_res: float,
    threshold_a: float,
    threshold_b: float,
    pixel_perfect: bool,
    resize_mode: str,
    width: float,
    height: float,
) -> tuple[Any, Any, Any, str]:
    """💥: (preview image, Allow Preview, preview column, message). The map is shown beside the input
    and Allow Preview is ticked; a problem becomes the tab's error message and the preview is kept."""
    try:
        raw = control_image(source, image, canvas)
        if raw is None:
            where = "canvas" if source == CANVAS else "image"
            raise InvalidRequestError(
                f"ControlNet unit {index} has no {where} to preview; upload an image or create a canvas"
            )
        rgb = decode_image(raw, f"ControlNet unit {index}: image")
        detected = detect_preview(
            app,
            module,
            rgb,
            processor_res,
            threshold_a,
            threshold_b,
            pixel_perfect,
            (width, height),
            resize_mode,
        )
    except Exception as exc:  # a message in the UI, never a broken page
        return gr.skip(), gr.skip(), gr.skip(), results.error_html(results.error_message(exc))
    return gr.update(value=detected), True, gr.update(visible=True), ""


# -- advanced weighting --------------------------------------------------------------------------------
WEIGHTS_HINT = (
    "Empty: the Control Weight. Else one weight per level, e.g. [1, 0.8, ...]: a ControlNet's residuals "
    "(SD1 13, SDXL 10), a T2I-Adapter's levels (4), an IP-Adapter's transformer blocks (SD1 16, SDXL 11)"
)


def parse_weights(text: str | None, index: int) -> list[float] | None:
    """The Weights box: "[1, 0.5]", "1, 0.5" or "1 0.5"; None when empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        values = json.loads(text if text.startswith("[") else f"[{','.join(text.replace(',', ' ').split())}]")
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(x, (int, float)) for x in values):
        raise InvalidRequestError(
            f"ControlNet unit {index}: Weights must be numbers, e.g. [1, 0.5, 0.5], got {text!r}"
        )
    return [float(x) for x in values]


def _reads_clip_features(module: str | None) -> bool:
    try:
        return get_preprocessor(module or "none").feeds_ip_adapter
    except InvalidRequestError:
        return False


def weight_type_weights(
    app: App, module: str, weight_type: str, weight: float, composition: float
) -> dict[str, Any]:
    """An IP-Adapter unit's Weights from the Weight Type ("normal": empty, the weight slider as it is);
    other units keep what the user typed."""
    if not _reads_clip_features(module):
        return gr.skip()
    if weight_type == WEIGHT_TYPES[0]:
        return gr.update(value="")
    weights = block_weights(weight_type, float(weight), active_family(app), float(composition))
    return gr.update(value=json.dumps([round(w, 3) for w in weights]))


def weights_frame(weights: Sequence[float], parts: Sequence[str] | None = None) -> pd.DataFrame:
    """The plot's rows: level, weight, part (input / middle / output for IP-Adapter blocks)."""
    labels = parts or ["level"] * len(weights)
    levels = [f"{i:02d}" for i in range(len(weights))]  # text: one bar per level, in order
    return pd.DataFrame({"level": levels, "weight": list(weights), "part": list(labels)})


def weights_plot(app: App, module: str, text: str) -> dict[str, Any]:
    """The Weights as bars (hidden while empty or not numbers)."""
    try:
        weights = parse_weights(text, 0)
    except InvalidRequestError:
        weights = None
    if not weights:
        return gr.update(visible=False)
    parts = block_parts(active_family(app)) if _reads_clip_features(module) else None
    if parts is not None and len(parts) != len(weights):
        parts = None
    return gr.update(value=weights_frame(weights, parts), visible=True)


# -- Generate ------------------------------------------------------------------------------------------
def unit_from_values(index: int, v: UnitValues) -> ControlNetUnit:
    """A unit as the API would build it from the same values (InvalidRequestError for a bad one).
    A disabled unit's image is not read."""
    skipped = ("source", "image", "canvas", "batch_images", "output_dir", "merge_files", "advanced_weighting")
    data = {name: getattr(v, name) for name in UNIT_INPUTS if name not in skipped}
    data["advanced_weighting"] = parse_weights(v.advanced_weighting, index)
    data["image"] = control_image(v.source, v.image, v.canvas) if v.enabled else None
    if v.source == BATCH:
        data.update(input_mode="batch", batch_images=v.batch_images or "", output_dir=v.output_dir or "")
    if v.source == MERGE:
        pictures = [_uploaded(f, index) for f in (v.merge_files or [])] if v.enabled else []
        data.update(input_mode="merge", image=[{"image": p} for p in pictures] or None)
    data["processor_res"] = int(v.processor_res) if v.processor_res is not None else -1
    data.update(_unused_sliders(v.module))
    return unit_from_dict(data, index)


def _uploaded(file: Any, index: int) -> np.ndarray:
    """A Multi-Inputs upload (Gradio's temporary file) as an RGB picture."""
    from PIL import Image, UnidentifiedImageError

    path = file if isinstance(file, str) else getattr(file, "name", None) or getattr(file, "path", "")
    try:
        with Image.open(path) as image:
            return decode_image(image.convert("RGBA"), f"ControlNet unit {index}: Multi-Inputs picture")
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidRequestError(
            f"ControlNet unit {index}: a Multi-Inputs file is not a picture ({exc})"
        ) from exc


def _unused_sliders(module: str) -> dict[str, int]:
    """Hidden sliders still hold a value; the unit gets the API's -1 for them instead, so the infotext
    is the same as for an API request. An unknown module is left for the service's message."""
    try:
        preprocessor = get_preprocessor(module or "none")
    except InvalidRequestError:
        return {}
    sliders = {
        "processor_res": preprocessor.resolution,
        "threshold_a": preprocessor.threshold_a,
        "threshold_b": preprocessor.threshold_b,
    }
    return {name: -1 for name, slider in sliders.items() if slider is None}


def units_from_values(values: Sequence[Any]) -> list[ControlNetUnit]:
    """Every unit's values (len(UNIT_INPUTS) per unit, in order) → units; [] without ControlNet controls."""
    size = len(UNIT_INPUTS)
    if len(values) % size:
        raise ValueError(f"ControlNet: {len(values)} values do not make whole units of {size}")
    return [
        unit_from_values(i, UnitValues(*values[start : start + size]))
        for i, start in enumerate(range(0, len(values), size))
    ]


# -- paste (↙️) ------------------------------------------------------------------------------------------
PASTED_SETTINGS = (
    "weight",
    "guidance_start",
    "guidance_end",
    "processor_res",
    "threshold_a",
    "threshold_b",
    "resize_mode",
    "control_mode",
    "pixel_perfect",
)


def pasted_unit(params: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The `ControlNet <index>` entry of a parsed infotext as unit fields; None when it has none."""
    from modules.sumi.services.controlnet.units import parse_infotext_unit

    text = params.get(f"ControlNet {index}")
    return parse_infotext_unit(text) if isinstance(text, str) and text else None


def pasted_module(params: dict[str, Any], index: int) -> str | None:
    """The preprocessor's label (what the dropdown shows) for the infotext's module name."""
    unit = pasted_unit(params, index)
    if unit is None or "module" not in unit:
        return None
    try:
        return get_preprocessor(str(unit["module"])).label
    except InvalidRequestError:
        return None


def pasted_model(app: App, params: dict[str, Any], index: int) -> Any:
    """The infotext's model when it is installed (offered even if another family is loaded), else None."""
    unit = pasted_unit(params, index)
    if unit is None or "model" not in unit:
        return None
    try:
        found = app.controlnet.models.find(str(unit["model"]))
    except InvalidRequestError:
        return None
    if found is None:
        return None
    choices = model_choices(app)
    return gr.update(choices=choices if found.name in choices else [*choices, found.name], value=found.name)


def paste_fields(app: App, units: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(component, infotext function) pairs that restore each unit from its `ControlNet i` entry."""
    fields: list[tuple[Any, Any]] = []
    for unit in units:
        i, v = unit.index, unit.values
        fields.append((v["enabled"], lambda d, i=i: True if pasted_unit(d, i) is not None else None))
        fields.append((v["module"], lambda d, i=i: pasted_module(d, i)))
        fields.append((v["model"], lambda d, i=i: pasted_model(app, d, i)))
        for name in PASTED_SETTINGS:
            fields.append((v[name], lambda d, i=i, name=name: (pasted_unit(d, i) or {}).get(name)))
    return fields
