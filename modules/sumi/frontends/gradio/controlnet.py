"""The ControlNet accordion of the txt2img tab, laid out as sd-webui-controlnet shows it.

One tab per unit (opt `control_net_unit_count`, default 3). Element ids follow the extension's, with
`P = "{tab}_controlnet_ControlNet-{i}"` (tab: "txt2img"):

- `{tab}_controlnet` (the accordion), `{tab}_controlnet_tabs`, `P` (unit i's tab)
- input: `P_input_tabs` with the tabs "Single Image" (`P_input_image`, a gr.Image), "Canvas"
  (`P_canvas`, a Sketchpad), "Batch" (`P_batch_image_dir`, `P_batch_output_dir`: a folder of
  pictures, one job each) and "Multi-Inputs" (`P_merge_files`: pictures used together);
  `P_generated_image` (the preview, in `P_generated_image_group`)
- new canvas: `P_controlnet_open_new_canvas_button` (📝) opens `P_controlnet_new_canvas_group` with
  `P_controlnet_canvas_width`, `P_controlnet_canvas_height`, `P_controlnet_canvas_create_button`,
  `P_controlnet_canvas_cancel_button`
- `P_controlnet_enable_checkbox`, `P_controlnet_low_vram_checkbox`,
  `P_controlnet_pixel_perfect_checkbox`, `P_controlnet_preprocessor_preview_checkbox`
- `P_controlnet_type_filter_radio` (Control Type: narrows the two dropdowns below and picks defaults)
- `P_controlnet_preprocessor_dropdown`, `P_controlnet_trigger_preprocessor` (💥),
  `P_controlnet_model_dropdown`, `P_controlnet_refresh_models` (🔄)
- `P_controlnet_control_weight_slider`, `P_controlnet_start_control_step_slider`,
  `P_controlnet_ending_control_step_slider`, `P_controlnet_preprocessor_resolution_slider`,
  `P_controlnet_threshold_A_slider`, `P_controlnet_threshold_B_slider`
- `P_controlnet_resize_mode_radio`, `P_controlnet_control_mode_radio`, `P_controlnet_hr_option_radio` (txt2img),
  `P_controlnet_union_control_type_dropdown`
- `P_controlnet_mask_upload_checkbox` ("Effective Region Mask") shows `P_mask_image` (white: where the
  unit acts)
- the "Advanced Weighting" accordion `P_controlnet_advanced_weighting`: `P_controlnet_weight_type`
  (IP-Adapter curves), `P_controlnet_weight_composition`, `P_controlnet_advanced_weights` (one weight per
  level; empty: off) and `P_controlnet_weight_plot`

Handlers live in `controlnet_handlers`; this module only builds and wires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.engine.controlnet.control import CONTROL_MODES
from modules.sumi.engine.controlnet.preprocessors import RESOLUTION, Slider
from modules.sumi.frontends.gradio import controlnet_handlers as h
from modules.sumi.services.controlnet.control_types import ALL, control_type_names
from modules.sumi.services.controlnet.units import HR_OPTIONS, UNION_CONTROL_TYPES
from modules.sumi.services.controlnet.weight_types import COMPOSITION_TYPES, WEIGHT_TYPES

if TYPE_CHECKING:
    from modules.sumi.app import App

WEIGHT = Slider("Control Weight", 0.0, 2.0, 1.0, 0.05)
GUIDANCE_START = Slider("Starting Control Step", 0.0, 1.0, 0.0, 0.01)
GUIDANCE_END = Slider("Ending Control Step", 0.0, 1.0, 1.0, 0.01)
QUICK = {"concurrency_limit": None, "show_progress": "hidden", "api_visibility": "undocumented"}


@dataclass
class UnitUI:
    """One unit's components: `values` by `UnitValues` field, the rest by role."""

    index: int
    prefix: str
    values: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[Any]:
        return [self.values[name] for name in h.UNIT_INPUTS]


@dataclass
class ControlNetUI:
    accordion: gr.Accordion
    units: list[UnitUI]

    @property
    def inputs(self) -> list[Any]:
        """Every unit's values for Generate, in the order `units_from_values` reads them."""
        return [c for unit in self.units for c in unit.inputs]


def _tool(text: str, elem_id: str) -> gr.Button:
    """A small square button as A1111's ToolButton (`tool` class, styled by the page CSS)."""
    return gr.Button(text, elem_id=elem_id, elem_classes=["tool"], size="sm", min_width=40, scale=0)


# -- layout --------------------------------------------------------------------------------------------
def create_controlnet(app: App, tab: str = "txt2img") -> ControlNetUI:
    """The accordion (closed, as the extension's) with one tab per unit; call inside the settings column."""
    count = max(1, int(app.options.control_net_unit_count))
    choices = h.model_choices(app)
    with (
        gr.Accordion("ControlNet", open=False, elem_id=f"{tab}_controlnet") as accordion,
        gr.Tabs(elem_id=f"{tab}_controlnet_tabs"),
    ):
        units = [_unit_tab(f"{tab}_controlnet", i, choices) for i in range(count)]
    return ControlNetUI(accordion, units)


def _unit_tab(base: str, index: int, model_choices: list[str]) -> UnitUI:
    unit = UnitUI(index, f"{base}_ControlNet-{index}")
    with gr.Tab(
        f"ControlNet Unit {index}", id=f"unit{index}", elem_id=unit.prefix, elem_classes=["cnet-unit-tab"]
    ):
        _input_row(unit)
        _canvas_row(unit)
        _checkbox_row(unit)
        _control_type_row(unit)
        _dropdown_row(unit, model_choices)
        _slider_rows(unit)
        _radio_rows(unit)
        _advanced_weighting(unit)
    return unit


def _input_row(unit: UnitUI) -> None:
    """The input (an uploaded image or a canvas, in two tabs) and the preprocessor preview beside it."""
    unit.values["source"] = gr.State(h.IMAGE)
    with gr.Row(equal_height=False, elem_id=f"{unit.prefix}_input_row"):
        _input_tabs(unit)
        _preview_column(unit)
    _region_mask(unit)


def _region_mask(unit: UnitUI) -> None:
    """The effective region mask (shown by its checkbox): the unit acts where it is white."""
    v, p, prefix = unit.values, unit.parts, unit.prefix
    with gr.Group(visible=False, elem_id=f"{prefix}_mask_image_group") as p["region_group"]:
        v["effective_region_mask"] = gr.Image(
            label="Effective Region Mask (white: where the unit acts)",
            elem_id=f"{prefix}_mask_image",
            type="numpy",
            image_mode="RGB",
            sources=["upload", "clipboard"],
            format="png",
            height=240,
        )


def _input_tabs(unit: UnitUI) -> None:
    v, p, prefix = unit.values, unit.parts, unit.prefix
    with gr.Tabs(elem_id=f"{prefix}_input_tabs", selected=h.IMAGE) as p["input_tabs"]:
        with gr.Tab("Single Image", id=h.IMAGE, elem_id=f"{prefix}_single_image_tab") as p["image_tab"]:
            v["image"] = gr.Image(
                label="Image",
                elem_id=f"{prefix}_input_image",
                type="numpy",
                image_mode="RGBA",  # transparency is composited over white, as the extension does
                sources=["upload", "clipboard"],
                format="png",
                height=320,
            )
        with gr.Tab("Canvas", id=h.CANVAS, elem_id=f"{prefix}_canvas_tab") as p["canvas_tab"]:
            # Sketchpad's `value` is typed like gr.Image's; it goes to gr.ImageEditor, which takes this dict
            blank = h.blank_canvas(h.DEFAULT_CANVAS_SIZE, h.DEFAULT_CANVAS_SIZE)
            v["canvas"] = gr.Sketchpad(
                value=blank,  # pyright: ignore[reportArgumentType]
                label="Canvas",
                elem_id=f"{prefix}_canvas",
                type="numpy",
                image_mode="RGBA",
                format="png",
                height=320,
                brush=gr.Brush(default_size=4, colors=["#000000", "#ffffff"], default_color="#000000"),
                layers=False,
            )
        with gr.Tab("Batch", id=h.BATCH, elem_id=f"{prefix}_batch_tab") as p["batch_tab"]:
            v["batch_images"] = gr.Textbox(
                label="Input Directory",
                placeholder="A folder inside the data folder: one job per picture, in name order",
                elem_id=f"{prefix}_batch_image_dir",
            )
            v["output_dir"] = gr.Textbox(
                label="Output Directory",
                placeholder="Leave blank to save as usual; else the results are named after the pictures",
                elem_id=f"{prefix}_batch_output_dir",
            )
        with gr.Tab("Multi-Inputs", id=h.MERGE, elem_id=f"{prefix}_merge_tab") as p["merge_tab"]:
            v["merge_files"] = gr.File(
                label="Pictures used together (IP-Adapter: averaged; others: weight shared)",
                file_count="multiple",
                file_types=["image"],
                elem_id=f"{prefix}_merge_files",
            )


def _preview_column(unit: UnitUI) -> None:
    p, prefix = unit.parts, unit.prefix
    with gr.Column(visible=False, elem_id=f"{prefix}_generated_image_group") as p["preview_group"]:
        p["preview"] = gr.Image(
            label="Preprocessor Preview",
            elem_id=f"{prefix}_generated_image",
            type="numpy",
            format="png",
            interactive=False,
            height=320,
        )


def _canvas_row(unit: UnitUI) -> None:
    p, prefix = unit.parts, unit.prefix
    with gr.Row(elem_id=f"{prefix}_controlnet_canvas_tools"):
        p["open_canvas"] = _tool("📝", f"{prefix}_controlnet_open_new_canvas_button")
    with gr.Group(visible=False, elem_id=f"{prefix}_controlnet_new_canvas_group") as p["canvas_group"]:
        p["canvas_width"] = _canvas_size("New Canvas Width", f"{prefix}_controlnet_canvas_width")
        p["canvas_height"] = _canvas_size("New Canvas Height", f"{prefix}_controlnet_canvas_height")
        with gr.Row():
            p["create_canvas"] = gr.Button(
                "Create New Canvas", elem_id=f"{prefix}_controlnet_canvas_create_button"
            )
            p["cancel_canvas"] = gr.Button("Cancel", elem_id=f"{prefix}_controlnet_canvas_cancel_button")


def _canvas_size(label: str, elem_id: str) -> gr.Slider:
    return gr.Slider(
        minimum=256, maximum=1024, value=h.DEFAULT_CANVAS_SIZE, step=64, label=label, elem_id=elem_id
    )


def _checkbox_row(unit: UnitUI) -> None:
    v, p, prefix = unit.values, unit.parts, unit.prefix
    with gr.Row(elem_id=f"{prefix}_controlnet_checkboxes", elem_classes=["controlnet_main_options"]):
        v["enabled"] = gr.Checkbox(label="Enable", elem_id=f"{prefix}_controlnet_enable_checkbox")
        v["low_vram"] = gr.Checkbox(label="Low VRAM", elem_id=f"{prefix}_controlnet_low_vram_checkbox")
        v["pixel_perfect"] = gr.Checkbox(
            label="Pixel Perfect", elem_id=f"{prefix}_controlnet_pixel_perfect_checkbox"
        )
        p["allow_preview"] = gr.Checkbox(
            label="Allow Preview", elem_id=f"{prefix}_controlnet_preprocessor_preview_checkbox"
        )
        p["region_toggle"] = gr.Checkbox(
            label="Effective Region Mask", elem_id=f"{prefix}_controlnet_mask_upload_checkbox"
        )


def _control_type_row(unit: UnitUI) -> None:
    """The extension's Control Type filter: a type narrows the preprocessor and model lists and picks
    their defaults (it is not sent with the unit)."""
    unit.parts["control_type"] = gr.Radio(
        control_type_names(),
        value=ALL,
        label="Control Type",
        elem_id=f"{unit.prefix}_controlnet_type_filter_radio",
        elem_classes=["controlnet_control_type_filter_group"],
    )


def _dropdown_row(unit: UnitUI, model_choices: list[str]) -> None:
    v, p, prefix = unit.values, unit.parts, unit.prefix
    with gr.Row(equal_height=True, elem_id=f"{prefix}_controlnet_dropdowns"):
        v["module"] = gr.Dropdown(
            h.preprocessor_labels(),
            value="none",
            label="Preprocessor",
            elem_id=f"{prefix}_controlnet_preprocessor_dropdown",
        )
        p["run_preprocessor"] = _tool("💥", f"{prefix}_controlnet_trigger_preprocessor")
        v["model"] = gr.Dropdown(
            model_choices, value=h.NONE, label="Model", elem_id=f"{prefix}_controlnet_model_dropdown"
        )
        p["refresh_models"] = _tool("🔄", f"{prefix}_controlnet_refresh_models")


def _slider(spec: Slider, elem_id: str, label: str | None = None, visible: bool = True) -> gr.Slider:
    return gr.Slider(
        spec.minimum,
        spec.maximum,
        value=spec.default,
        step=spec.step,
        label=label or spec.label,
        visible=visible,
        elem_id=elem_id,
    )


def _slider_rows(unit: UnitUI) -> None:
    v, prefix = unit.values, unit.prefix
    v["weight"] = _slider(WEIGHT, f"{prefix}_controlnet_control_weight_slider")
    with gr.Row():
        v["guidance_start"] = _slider(GUIDANCE_START, f"{prefix}_controlnet_start_control_step_slider")
        v["guidance_end"] = _slider(GUIDANCE_END, f"{prefix}_controlnet_ending_control_step_slider")
    # shown by the preprocessor that uses them (stacked, as the extension shows them)
    v["processor_res"] = _slider(
        RESOLUTION, f"{prefix}_controlnet_preprocessor_resolution_slider", h.RESOLUTION_LABEL, visible=False
    )
    for key, name in (("threshold_a", "A"), ("threshold_b", "B")):
        v[key] = _slider(
            h.UNUSED_THRESHOLD,
            f"{prefix}_controlnet_threshold_{name}_slider",
            f"Threshold {name}",
            visible=False,
        )


def _radio_rows(unit: UnitUI) -> None:
    v, prefix = unit.values, unit.prefix
    v["control_mode"] = gr.Radio(
        list(CONTROL_MODES),
        value=h.DEFAULT_CONTROL_MODE,
        label="Control Mode",
        elem_id=f"{prefix}_controlnet_control_mode_radio",
    )
    v["resize_mode"] = gr.Radio(
        list(h.RESIZE_MODES),
        value=h.DEFAULT_RESIZE_MODE,
        label="Resize Mode",
        elem_id=f"{prefix}_controlnet_resize_mode_radio",
    )
    v["hr_option"] = gr.Radio(  # which passes of a Hires. fix job the unit works in (txt2img only)
        list(HR_OPTIONS),
        value=HR_OPTIONS[0],
        label="Hires-Fix Option",
        elem_id=f"{prefix}_controlnet_hr_option_radio",
        visible=prefix.startswith("txt2img"),
    )
    # The extension sets this (hidden) from its control-type filter; here the preprocessor's kind does
    # that while it says "Unknown", and the dropdown can override it.
    v["union_control_type"] = gr.Dropdown(
        ["Unknown", *UNION_CONTROL_TYPES],
        value="Unknown",
        label="Union Control Type (ControlNet Union models; Unknown: from the preprocessor)",
        elem_id=f"{prefix}_controlnet_union_control_type_dropdown",
    )


def _advanced_weighting(unit: UnitUI) -> None:
    """One weight per level instead of the weight slider; IP-Adapter curves fill it from a weight type."""
    v, p, prefix = unit.values, unit.parts, unit.prefix
    with gr.Accordion("Advanced Weighting", open=False, elem_id=f"{prefix}_controlnet_advanced_weighting"):
        with gr.Row():
            p["weight_type"] = gr.Dropdown(
                list(WEIGHT_TYPES),
                value=WEIGHT_TYPES[0],
                label="Weight Type (IP-Adapter: fills the weights from the Control Weight)",
                elem_id=f"{prefix}_controlnet_weight_type",
            )
            p["weight_composition"] = gr.Slider(
                0.0,
                2.0,
                value=1.0,
                step=0.01,
                label="Composition Weight",
                visible=False,
                elem_id=f"{prefix}_controlnet_weight_composition",
            )
        v["advanced_weighting"] = gr.Textbox(
            label="Weights",
            placeholder=h.WEIGHTS_HINT,
            elem_id=f"{prefix}_controlnet_advanced_weights",
        )
        p["weight_plot"] = gr.BarPlot(
            value=h.weights_frame([]),
            x="level",
            y="weight",
            color="part",
            title="Weight per level",
            visible=False,
            height=220,
            elem_id=f"{prefix}_controlnet_weight_plot",
        )


# -- events --------------------------------------------------------------------------------------------
def wire_controlnet(app: App, ui: ControlNetUI, width: Any, height: Any, message: gr.HTML) -> None:
    """Connect every unit; `width`/`height` are the generation size (for Pixel Perfect previews) and
    `message` the tab's error area."""
    dropdowns = [unit.values["model"] for unit in ui.units]
    ui.accordion.expand(partial(h.refresh_model_dropdowns, app), inputs=dropdowns, outputs=dropdowns, **QUICK)
    for unit in ui.units:
        unit.parts["refresh_models"].click(
            partial(h.refresh_model_dropdowns, app, rescan=True),
            inputs=dropdowns,
            outputs=dropdowns,
            trigger_mode="always_last",
            **QUICK,
        )
        unit.parts["control_type"].change(
            partial(h.control_type_changed, app),
            inputs=unit.parts["control_type"],
            outputs=[unit.values["module"], unit.values["model"]],
            **QUICK,
        )
        _wire_sliders(unit)
        _wire_canvas(unit)
        _wire_preview(app, unit, width, height, message)
        _wire_region_and_weights(app, unit)


def _wire_sliders(unit: UnitUI) -> None:
    v = unit.values
    sliders = [v["processor_res"], v["threshold_a"], v["threshold_b"]]
    v["module"].change(
        h.preprocessor_changed,
        inputs=[v["module"], v["pixel_perfect"], v["processor_res"]],
        outputs=sliders,
        **QUICK,
    )
    v["pixel_perfect"].change(
        h.pixel_perfect_changed, inputs=[v["module"], v["pixel_perfect"]], outputs=v["processor_res"], **QUICK
    )


def _wire_canvas(unit: UnitUI) -> None:
    v, p = unit.values, unit.parts
    p["image_tab"].select(lambda: h.IMAGE, outputs=v["source"], **QUICK)
    p["canvas_tab"].select(lambda: h.CANVAS, outputs=v["source"], **QUICK)
    p["batch_tab"].select(lambda: h.BATCH, outputs=v["source"], **QUICK)
    p["merge_tab"].select(lambda: h.MERGE, outputs=v["source"], **QUICK)
    p["open_canvas"].click(lambda: gr.update(visible=True), outputs=p["canvas_group"], **QUICK)
    p["cancel_canvas"].click(lambda: gr.update(visible=False), outputs=p["canvas_group"], **QUICK)
    p["create_canvas"].click(
        h.create_canvas,
        inputs=[p["canvas_width"], p["canvas_height"]],
        outputs=[v["canvas"], p["input_tabs"], v["source"], p["canvas_group"]],
        **QUICK,
    )


def _wire_preview(app: App, unit: UnitUI, width: Any, height: Any, message: gr.HTML) -> None:
    v, p = unit.values, unit.parts
    p["allow_preview"].change(
        lambda on: gr.update(visible=bool(on)), inputs=p["allow_preview"], outputs=p["preview_group"], **QUICK
    )
    p["run_preprocessor"].click(
        partial(h.run_preview, app, unit.index),
        inputs=[
            v["module"],
            v["source"],
            v["image"],
            v["canvas"],
            v["processor_res"],
            v["threshold_a"],
            v["threshold_b"],
            v["pixel_perfect"],
            v["resize_mode"],
            width,
            height,
        ],
        outputs=[p["preview"], p["allow_preview"], p["preview_group"], message],
        concurrency_limit=None,
        show_progress="minimal",
        api_visibility="undocumented",
    )


def _wire_region_and_weights(app: App, unit: UnitUI) -> None:
    v, p = unit.values, unit.parts
    p["region_toggle"].change(  # unchecked: the mask is cleared (the extension's rule)
        lambda on: (gr.update(visible=bool(on)), gr.update() if on else None),
        inputs=p["region_toggle"],
        outputs=[p["region_group"], v["effective_region_mask"]],
        **QUICK,
    )
    p["weight_type"].change(
        lambda kind: gr.update(visible=kind in COMPOSITION_TYPES),
        inputs=p["weight_type"],
        outputs=p["weight_composition"],
        **QUICK,
    )
    for trigger in (p["weight_type"], v["weight"], p["weight_composition"]):
        trigger.change(
            partial(h.weight_type_weights, app),
            inputs=[v["module"], p["weight_type"], v["weight"], p["weight_composition"]],
            outputs=v["advanced_weighting"],
            **QUICK,
        )
    v["advanced_weighting"].change(
        partial(h.weights_plot, app),
        inputs=[v["module"], v["advanced_weighting"]],
        outputs=p["weight_plot"],
        **QUICK,
    )
