"""X/Y/Z plot (A1111's built-in script and its controls); the plot itself is `modules.sumi.services.jobs.xyz_plot`.

The arguments are A1111's, in A1111's order: x_type, x_values, x_values_dropdown, y_type, y_values,
y_values_dropdown, z_type, z_values, z_values_dropdown, draw_legend, include_lone_images,
include_sub_grids, no_fixed_seeds, vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode.
The type dropdowns list the axes Sumi supports on the tab, each holding its index in A1111's axis list of
that tab (img2img adds Image CFG Scale and varies Denoising and Initial noise multiplier).
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import modules.scripts as scripts
from modules import shared
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing
from modules.sumi.services.jobs.xyz_extension_axes import *  # noqa: F403  (A1111's names, for extensions)
from modules.sumi.services.jobs.xyz_plot import (
    AXES,
    TITLE,
    AxisSpec,
    PlotSettings,
    axes_for,
    axis_index,
    run_plot,
    split_csv,
    to_csv,
)

# A1111's `axis_options`: Sumi's axes, then those extensions append (they find this module in
# `scripts.scripts_data` by its A1111 name, "xyz_grid.py"). Made again each time the scripts load.
axis_options: list[Any] = list(AXES)


class AxisControls(NamedTuple):
    kind: Any  # the type dropdown
    values: Any  # the text box
    dropdown: Any  # the values dropdown (axes with choices)
    fill: Any  # the button that fills in every choice


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        return build_ui(self)

    def run(
        self,
        p: StableDiffusionProcessing,
        x_type: Any = 1,
        x_values: str = "",
        x_values_dropdown: Any = None,
        y_type: Any = 0,
        y_values: str = "",
        y_values_dropdown: Any = None,
        z_type: Any = 0,
        z_values: str = "",
        z_values_dropdown: Any = None,
        draw_legend: bool = True,
        include_lone_images: bool = False,
        include_sub_grids: bool = False,
        no_fixed_seeds: bool = False,
        vary_seeds_x: bool = False,
        vary_seeds_y: bool = False,
        vary_seeds_z: bool = False,
        margin_size: float = 0,
        csv_mode: bool = False,
    ) -> Processed:
        settings = PlotSettings(
            AxisSpec(x_type, x_values, x_values_dropdown),
            AxisSpec(y_type, y_values, y_values_dropdown),
            AxisSpec(z_type, z_values, z_values_dropdown),
            draw_legend=bool(draw_legend),
            include_lone_images=bool(include_lone_images),
            include_sub_grids=bool(include_sub_grids),
            no_fixed_seeds=bool(no_fixed_seeds),
            vary_seeds=(bool(vary_seeds_x), bool(vary_seeds_y), bool(vary_seeds_z)),
            margin_size=int(margin_size or 0),
            csv_mode=bool(csv_mode),
            is_img2img=bool(self.is_img2img),
            axis_options=tuple(axis_options),
        )
        return run_plot(shared.app(), p, settings)


# --- controls -----------------------------------------------------------------------------------------


def _in_blocks() -> bool:
    from gradio.context import get_blocks_context

    return get_blocks_context() is not None


def layout(kind: str) -> Any:
    """A gradio layout block inside a page; nothing when the controls are built for the API only."""
    import gradio as gr

    return getattr(gr, kind)() if _in_blocks() else contextlib.nullcontext()


def build_ui(script: Script) -> list[Any]:
    """A1111's controls, in A1111's order; the type dropdowns hold A1111's axis indices."""
    import gradio as gr

    is_img2img = bool(script.is_img2img)
    offered = [
        (axis.label, i)
        for i, axis in enumerate(axes_for(is_img2img, axis_options))
        if axis.supported_on(is_img2img)
    ]
    axes = {}
    for name, default in (("x", 1), ("y", 0), ("z", 0)):
        with layout("Row"):
            axes[name] = AxisControls(
                gr.Dropdown(
                    offered,
                    value=default,
                    label=f"{name.upper()} type",
                    elem_id=script.elem_id(f"{name}_type"),
                ),
                gr.Textbox(label=f"{name.upper()} values", lines=1, elem_id=script.elem_id(f"{name}_values")),
                gr.Dropdown(
                    [],
                    label=f"{name.upper()} values",
                    visible=False,
                    multiselect=True,
                    allow_custom_value=True,
                ),
                gr.Button(
                    "\U0001f4d2", visible=False, size="sm", elem_id=f"xyz_grid_fill_{name}_tool_button"
                ),
            )
    with layout("Row"):
        checks = {
            key: gr.Checkbox(value, label=label, elem_id=script.elem_id(key))
            for key, label, value in (
                ("draw_legend", "Draw legend", True),
                ("no_fixed_seeds", "Keep -1 for seeds", False),
                ("vary_seeds_x", "Vary seeds for X", False),
                ("vary_seeds_y", "Vary seeds for Y", False),
                ("vary_seeds_z", "Vary seeds for Z", False),
                ("include_lone_images", "Include Sub Images", False),
                ("include_sub_grids", "Include Sub Grids", False),
                ("csv_mode", "Use text inputs instead of dropdowns", False),
            )
        }
        margin_size = gr.Slider(
            0, 500, value=0, step=2, label="Grid margins (px)", elem_id=script.elem_id("margin_size")
        )
    if _in_blocks():
        _wire(axes, checks["csv_mode"], is_img2img)
    script.infotext_fields = [
        field for name, c in axes.items() for field in _paste_fields(name.upper(), c, is_img2img)
    ]
    x, y, z = axes["x"], axes["y"], axes["z"]
    return [
        *(x.kind, x.values, x.dropdown, y.kind, y.values, y.dropdown, z.kind, z.values, z.dropdown),
        *(checks[k] for k in ("draw_legend", "include_lone_images", "include_sub_grids", "no_fixed_seeds")),
        *(checks[k] for k in ("vary_seeds_x", "vary_seeds_y", "vary_seeds_z")),
        margin_size,
        checks["csv_mode"],
    ]


def _paste_fields(name: str, controls: AxisControls, is_img2img: bool = False) -> list[tuple[Any, Any]]:
    """Reading an X/Y/Z infotext back into the controls (the type is stored by label)."""
    return [
        (
            controls.kind,
            lambda params: axis_index(str(params.get(f"{name} Type", "")), is_img2img, axis_options),
        ),
        (controls.values, f"{name} Values"),
        (controls.dropdown, lambda params: split_csv(str(params.get(f"{name} Values", "")))),
    ]


def _choices(kind: Any, is_img2img: bool = False) -> list[str] | None:
    try:
        axis = axes_for(is_img2img, axis_options)[int(kind)]
    except (TypeError, ValueError, IndexError):
        return None
    return axis.choices(shared.app()) if axis.choices is not None else None


def _select_axis(
    kind: Any, text: str, chosen: list[str] | None, csv_mode: bool, is_img2img: bool = False
) -> tuple[Any, Any, Any]:
    """Show the value dropdown (with the axis' choices) or the text box, carrying the values over."""
    import gradio as gr

    choices = _choices(kind, is_img2img)
    if choices is None:
        return (
            gr.update(visible=False),
            gr.update(visible=True, value=text),
            gr.update(visible=False, value=[]),
        )
    if csv_mode and chosen:
        text, chosen = to_csv([c for c in chosen if c in choices]), []
    elif not csv_mode and text:
        text, chosen = "", [c for c in split_csv(text) if c in choices]
    return (
        gr.update(visible=True),
        gr.update(visible=csv_mode, value=text),
        gr.update(choices=choices, visible=not csv_mode, value=chosen or []),
    )


def _fill(kind: Any, csv_mode: bool, is_img2img: bool = False) -> tuple[Any, Any]:
    import gradio as gr

    choices = _choices(kind, is_img2img)
    if choices is None:
        return gr.update(), gr.update()
    return (
        (gr.update(value=to_csv(choices)), gr.update())
        if csv_mode
        else (gr.update(), gr.update(value=choices))
    )


def _wire(axes: dict[str, AxisControls], csv_mode: Any, is_img2img: bool = False) -> None:
    import gradio as gr

    def select(kind: Any, text: str, chosen: list[str] | None, csv: bool) -> tuple[Any, Any, Any]:
        return _select_axis(kind, text, chosen, csv, is_img2img)

    def fill(kind: Any, csv: bool) -> tuple[Any, Any]:
        return _fill(kind, csv, is_img2img)

    for c in axes.values():
        outputs = [c.fill, c.values, c.dropdown]
        c.kind.change(select, [c.kind, c.values, c.dropdown, csv_mode], outputs, show_progress="hidden")
        c.fill.click(fill, [c.kind, csv_mode], [c.values, c.dropdown], show_progress="hidden")
        csv_mode.change(select, [c.kind, c.values, c.dropdown, csv_mode], outputs, show_progress="hidden")
    with layout("Row"):
        for first, second in (("x", "y"), ("y", "z"), ("x", "z")):
            button = gr.Button(f"Swap {first.upper()}/{second.upper()} axes", size="sm")
            a, b = axes[first], axes[second]
            both = [a.kind, a.values, a.dropdown, b.kind, b.values, b.dropdown]
            button.click(lambda *v: (*v[3:], *v[:3]), both, both, show_progress="hidden")
