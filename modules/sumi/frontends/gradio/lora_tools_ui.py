"""The LoRA tools of the Checkpoint Merger tab: bake LoRAs into a checkpoint, extract a LoRA from two
checkpoints, resize a LoRA (services.networks.lora_tools). Each says in the result panel what it wrote,
or why it wrote nothing."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import gradio as gr

from modules.sumi.app import App
from modules.sumi.services.networks.lora_tools import ToolError, ToolResult


def _lora_names(app: App) -> list[str]:
    return [info.name for info in app.loras.refresh()]


def _run(job: Callable[[], ToolResult]) -> str:
    try:
        result = job()
    except ToolError as exc:
        return f'<p class="error">Not saved: {html.escape(str(exc))}</p>'
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings)
    return f"<p>{html.escape(result.message)}</p>" + (f"<ul>{warnings}</ul>" if warnings else "")


def create_lora_tools(app: App, checkpoint_titles: list[str]) -> dict[str, Any]:
    """Lay out the three tools (inside a column) and wire them."""
    c: dict[str, Any] = {}
    with gr.Accordion("Bake LoRAs into a checkpoint", open=True):
        c["bake_checkpoint"] = gr.Dropdown(
            checkpoint_titles, label="Checkpoint", elem_id="lora_bake_checkpoint", allow_custom_value=True
        )
        c["bake_loras"] = gr.Textbox(
            label="LoRAs, as in a prompt: <lora:name:0.8> <lora:other:1:lbw=OUTD>", elem_id="lora_bake_tags"
        )
        with gr.Row():
            c["bake_name"] = gr.Textbox(label="Name (optional)", elem_id="lora_bake_name")
            c["bake_half"] = gr.Checkbox(False, label="Save as float16", elem_id="lora_bake_half")
        c["bake"] = gr.Button("Bake", elem_id="lora_bake_run")
    with gr.Accordion("Extract a LoRA from two checkpoints", open=False):
        with gr.Row():
            c["extract_tuned"] = gr.Dropdown(
                checkpoint_titles, label="Tuned model", elem_id="lora_extract_tuned", allow_custom_value=True
            )
            c["extract_base"] = gr.Dropdown(
                checkpoint_titles, label="Base model", elem_id="lora_extract_base", allow_custom_value=True
            )
        with gr.Row():
            c["extract_rank"] = gr.Slider(1, 256, value=32, step=1, label="Rank", elem_id="lora_extract_rank")
            c["extract_conv_rank"] = gr.Slider(
                0,
                256,
                value=0,
                step=1,
                label="Conv rank (0: attention and linear layers only)",
                elem_id="lora_extract_conv_rank",
            )
        with gr.Row():
            c["extract_name"] = gr.Textbox(label="Name (optional)", elem_id="lora_extract_name")
            c["extract_half"] = gr.Checkbox(True, label="Save as float16", elem_id="lora_extract_half")
        c["extract"] = gr.Button("Extract", elem_id="lora_extract_run")
    with gr.Accordion("Resize a LoRA", open=False):
        with gr.Row():
            c["resize_lora"] = gr.Dropdown(
                _lora_names(app), label="LoRA", elem_id="lora_resize_lora", allow_custom_value=True
            )
            c["resize_rank"] = gr.Slider(
                1, 256, value=16, step=1, label="New rank", elem_id="lora_resize_rank"
            )
        with gr.Row():
            c["resize_name"] = gr.Textbox(label="Name (optional)", elem_id="lora_resize_name")
            c["resize_half"] = gr.Checkbox(True, label="Save as float16", elem_id="lora_resize_half")
        c["resize"] = gr.Button("Resize", elem_id="lora_resize_run")
    c["result"] = gr.HTML(elem_id="lora_tools_result")
    _wire(app, c)
    return c


def _wire(app: App, c: dict[str, Any]) -> None:
    tools = app.lora_tools
    common: dict[str, Any] = {"outputs": c["result"], "api_visibility": "undocumented"}
    c["bake"].click(
        lambda ckpt, tags, name, half: _run(
            lambda: tools.merge_into_checkpoint(ckpt or "", tags or "", name or "", bool(half))
        ),
        inputs=[c["bake_checkpoint"], c["bake_loras"], c["bake_name"], c["bake_half"]],
        **common,
    )
    c["extract"].click(
        lambda tuned, base, rank, conv, name, half: _run(
            lambda: tools.extract(tuned or "", base or "", int(rank), int(conv), name or "", bool(half))
        ),
        inputs=[
            c["extract_tuned"],
            c["extract_base"],
            c["extract_rank"],
            c["extract_conv_rank"],
            c["extract_name"],
            c["extract_half"],
        ],
        **common,
    )
    c["resize"].click(
        lambda lora, rank, name, half: _run(
            lambda: tools.resize(lora or "", int(rank), name or "", bool(half))
        ),
        inputs=[c["resize_lora"], c["resize_rank"], c["resize_name"], c["resize_half"]],
        **common,
    )
