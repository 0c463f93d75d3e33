"""The Checkpoint Merger tab (A1111's, with its element ids), plus block weights with a preview of the
curve, train difference and the VAE choice. The merge runs in `services.models.merger`; a merge that
cannot be done says why in the result panel and writes nothing."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from modules.sumi.app import App
from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.families import detect_family
from modules.sumi.engine.merging import (
    MERGE_PRESETS,
    METHODS,
    CheckpointTensors,
    merge_layout,
    parse_merge_weights,
)
from modules.sumi.frontends.gradio.lora_tools_ui import create_lora_tools
from modules.sumi.services.models.merger import CONFIG_SOURCES, MergeError, MergeRequest

NO_PRESET = "(type the weights)"


def _titles(app: App) -> list[str]:
    return app.checkpoints.titles()


def _vae_choices(app: App) -> list[str]:
    return ["None", *app.vaes.names()]


def _tool(text: str, elem_id: str) -> gr.Button:
    return gr.Button(text, elem_id=elem_id, elem_classes=["tool"], size="sm", min_width=40, scale=0)


def _is_sdxl(app: App, primary: str | None, spec: str) -> bool:
    """The primary's family when it can be read (its header only), else what the list's length says."""
    info = app.checkpoints.match(primary) if primary else None
    if info is not None:
        try:
            with CheckpointTensors(info.filename) as tensors:
                return detect_family(tensors).name.startswith("SDXL")
        except (EngineError, OSError):
            pass
    return spec.count(",") + 1 in (19, 20)


def curve_svg(ratios: dict[str, float]) -> str:
    """The block ratios as a line over the blocks (BASE apart), 0..1 marked."""
    blocks = [b for b in ratios if b != "BASE"]
    width, height, pad = 620, 190, 28
    low, high = min(0.0, *ratios.values()), max(1.0, *ratios.values())

    def y(value: float) -> float:
        return pad + (height - 2 * pad) * (high - value) / (high - low)

    step = (width - 2 * pad) / max(len(blocks) - 1, 1)
    points = " ".join(f"{pad + i * step:.1f},{y(ratios[b]):.1f}" for i, b in enumerate(blocks))
    ticks = "".join(
        f'<text x="{pad + i * step:.1f}" y="{height - 6}" font-size="9" text-anchor="middle">{b}</text>'
        for i, b in enumerate(blocks)
        if b in ("IN00", "M00", blocks[-1]) or i % 3 == 0
    )
    dots = "".join(
        f'<circle cx="{pad + i * step:.1f}" cy="{y(ratios[b]):.1f}" r="3"><title>{b}: {ratios[b]:g}</title></circle>'
        for i, b in enumerate(blocks)
    )
    grid = "".join(
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#8884" />'
        f'<text x="4" y="{y(v) + 3:.1f}" font-size="9">{v:g}</text>'
        for v in (0.0, 0.5, 1.0)
    )
    return (
        f'<svg id="modelmerger_block_curve" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="block weights" fill="currentColor">{grid}'
        f'<polyline points="{points}" fill="none" stroke="currentColor" stroke-width="2" />{dots}{ticks}'
        f'<text x="{width - pad}" y="14" font-size="10" text-anchor="end">BASE (text encoder) {ratios["BASE"]:g}</text>'
        "</svg>"
    )


def preview(app: App, primary: str | None, spec: str, multiplier: float) -> str:
    """The curve of the typed weights (or preset), or why they cannot be read."""
    spec = (spec or "").strip()
    if not spec:
        return "<p>No block weights: every block takes the multiplier.</p>"
    try:
        ratios = parse_merge_weights(spec, _is_sdxl(app, primary, spec), float(multiplier))
    except ValueError as exc:
        return f'<p class="error">{html.escape(str(exc))}</p>'
    return curve_svg(ratios)


def _preset_text(name: str) -> Any:
    """The preset's 25 UNet values (BASE stays the multiplier), or the typed weights left alone."""
    return ",".join(f"{v:.4g}" for v in MERGE_PRESETS[name]) if name in MERGE_PRESETS else gr.skip()


def _merge(app: App, *values: Any, progress=gr.Progress(), in_memory: bool = False) -> tuple:
    (primary, secondary, tertiary, method, multiplier, half, name, fmt, config, vae, discard) = values[:11]
    (save_metadata, add_recipe, copy_metadata, metadata_json, block_weights, merge_vae) = values[11:]
    request = MergeRequest(
        primary_model_name=primary or "",
        secondary_model_name=secondary or "",
        tertiary_model_name=tertiary or "",
        interp_method=method,
        multiplier=float(multiplier),
        save_as_half=bool(half),
        custom_name=name or "",
        checkpoint_format=fmt,
        config_source=int(config or 0),
        bake_in_vae=vae or "None",
        discard_weights=discard or "",
        save_metadata=bool(save_metadata),
        add_merge_recipe=bool(add_recipe),
        copy_metadata_fields=bool(copy_metadata),
        metadata_json=metadata_json or "",
        block_weights=block_weights or "",
        merge_vae=bool(merge_vae),
    )
    try:

        def report(done: int, total: int) -> None:
            progress((done, total), desc="Merging")

        result = app.merger.merge(request, report, in_memory=in_memory)
        message = f"<p>{html.escape(result.message)}</p>"
    except MergeError as exc:
        message = f'<p class="error">Not merged: {html.escape(str(exc))}</p>'
    choices = gr.update(choices=_titles(app))
    return choices, choices, choices, message


def create_merger_tab(app: App) -> dict[str, Any]:
    """Lay out the tab (inside a `gr.Tab`) and wire it."""
    c: dict[str, Any] = {}
    titles = _titles(app)
    with gr.Tabs(elem_id="modelmerger_tabs"):
        with gr.Tab("Checkpoints", id="modelmerger_checkpoints"), gr.Row(equal_height=False):
            with gr.Column(variant="compact"):
                gr.HTML(
                    "<p>A merger of two or three checkpoints; the result is saved in the checkpoint folder and "
                    "listed at once. Tensors are read one at a time, so a merge needs about one model's RAM.</p>"
                )
                with gr.Row():
                    for key, label in (
                        ("primary", "Primary model (A)"),
                        ("secondary", "Secondary model (B)"),
                        ("tertiary", "Tertiary model (C)"),
                    ):
                        c[key] = gr.Dropdown(
                            titles,
                            label=label,
                            elem_id=f"modelmerger_{key}_model_name",
                            value=None,
                            allow_custom_value=True,  # a title gains its hash once hashed; any alias resolves
                        )
                    c["refresh"] = _tool("🔄", "modelmerger_refresh_checkpoint_names")
                c["custom_name"] = gr.Textbox(
                    label="Custom Name (Optional)", elem_id="modelmerger_custom_name"
                )
                c["multiplier"] = gr.Slider(
                    0.0,
                    1.0,
                    step=0.05,
                    value=0.3,
                    label="Multiplier (M) - set to 0 to get model A",
                    elem_id="modelmerger_interp_amount",
                )
                c["method"] = gr.Radio(
                    list(METHODS),
                    value="Weighted sum",
                    label="Interpolation Method",
                    elem_id="modelmerger_interp_method",
                )
                with gr.Row():
                    c["format"] = gr.Radio(
                        ["ckpt", "safetensors"],
                        value="safetensors",
                        label="Checkpoint format",
                        elem_id="modelmerger_checkpoint_format",
                    )
                    c["half"] = gr.Checkbox(
                        False, label="Save as float16", elem_id="modelmerger_save_as_half"
                    )
                with gr.Accordion("Block weights", open=False, elem_id="modelmerger_block_weights_accordion"):
                    c["preset"] = gr.Dropdown(
                        [NO_PRESET, *MERGE_PRESETS],
                        value=NO_PRESET,
                        label="Block weight preset",
                        elem_id="modelmerger_block_preset",
                    )
                    layout_sd, layout_xl = merge_layout(sdxl=False), merge_layout(sdxl=True)
                    c["block_weights"] = gr.Textbox(
                        label=f"Block weights: {len(layout_sd)} values for SD1/SD2 ({', '.join(layout_sd[:2])} ... {layout_sd[-1]}), "
                        f"{len(layout_xl)} for SDXL (... {layout_xl[-1]}); without BASE, BASE is the multiplier",
                        elem_id="modelmerger_block_weights",
                        lines=2,
                    )
                    c["curve"] = gr.HTML(preview(app, None, "", 0.3), elem_id="modelmerger_block_curve_panel")
                with gr.Row():
                    c["config"] = gr.Radio(
                        list(CONFIG_SOURCES),
                        value=CONFIG_SOURCES[0],
                        type="index",
                        label="Copy config from",
                        elem_id="modelmerger_config_method",
                    )
                    c["vae"] = gr.Dropdown(
                        _vae_choices(app),
                        value="None",
                        label="Bake in VAE",
                        elem_id="modelmerger_bake_in_vae",
                    )
                    c["refresh_vae"] = _tool("🔄", "modelmerger_refresh_bake_in_vae")
                c["merge_vae"] = gr.Checkbox(
                    False,
                    label="Merge the VAE too (otherwise it is the primary's)",
                    elem_id="modelmerger_merge_vae",
                )
                c["discard"] = gr.Textbox(
                    label="Discard weights with matching name (regular expression)",
                    elem_id="modelmerger_discard_weights",
                )
                with gr.Accordion("Metadata", open=False):
                    c["save_metadata"] = gr.Checkbox(
                        True, label="Save metadata", elem_id="modelmerger_save_metadata"
                    )
                    c["add_recipe"] = gr.Checkbox(
                        True, label="Add merge recipe metadata", elem_id="modelmerger_add_recipe"
                    )
                    c["copy_metadata"] = gr.Checkbox(
                        True, label="Copy metadata from merged models", elem_id="modelmerger_copy_metadata"
                    )
                    c["metadata_json"] = gr.Textbox(
                        "", label="Metadata in JSON format", lines=3, elem_id="modelmerger_metadata_json"
                    )
                with gr.Row():
                    c["merge"] = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
                    c["try"] = gr.Button("Merge in memory and try", elem_id="modelmerger_try")
            with gr.Column(variant="compact"):
                c["result"] = gr.HTML(elem_id="modelmerger_result")
        with gr.Tab("LoRA", id="modelmerger_lora"):
            c["lora_tools"] = create_lora_tools(app, titles)
    _wire(app, c)
    return c


def _wire(app: App, c: dict[str, Any]) -> None:
    c["refresh"].click(
        lambda: [gr.update(choices=(app.checkpoints.refresh(), _titles(app))[1])] * 3,
        outputs=[c["primary"], c["secondary"], c["tertiary"]],
        trigger_mode="always_last",
        api_visibility="undocumented",
    )
    c["refresh_vae"].click(
        lambda: gr.update(choices=(app.vaes.refresh(), _vae_choices(app))[1]),
        outputs=c["vae"],
        trigger_mode="always_last",
        api_visibility="undocumented",
    )
    c["preset"].change(
        _preset_text, inputs=c["preset"], outputs=c["block_weights"], api_visibility="undocumented"
    )
    curve_inputs = [c["primary"], c["block_weights"], c["multiplier"]]
    for source in curve_inputs:
        source.change(
            lambda primary, spec, m: preview(app, primary, spec, m),
            inputs=curve_inputs,
            outputs=c["curve"],
            show_progress="hidden",
            api_visibility="undocumented",
        )
    inputs = [
        c[name]
        for name in (
            "primary", "secondary", "tertiary", "method", "multiplier", "half", "custom_name", "format",
            "config", "vae", "discard", "save_metadata", "add_recipe", "copy_metadata", "metadata_json",
            "block_weights", "merge_vae",
        )
    ]  # fmt: skip
    for button, in_memory in ((c["merge"], False), (c["try"], True)):
        button.click(
            lambda *values, progress=gr.Progress(), in_memory=in_memory: _merge(
                app, *values, progress=progress, in_memory=in_memory
            ),
            inputs=inputs,
            outputs=[c["primary"], c["secondary"], c["tertiary"], c["result"]],
            api_visibility="undocumented",
        )
