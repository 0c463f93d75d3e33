"""The Train tab's LoRA panel (Sumi's): LoRA, LoCon, LoHa and LoKr on a folder of captioned images,
written to models/Lora in kohya's layout, usable as `<lora:name:1>` as soon as it is saved."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.sampling.samplers import SAMPLERS
from modules.sumi.engine.training.loop import OPTIMIZERS
from modules.sumi.engine.training.model_io import PRECISIONS
from modules.sumi.frontends.gradio import train_monitor
from modules.sumi.frontends.gradio.train_panel_values import settings_from_panel
from modules.sumi.frontends.gradio.txt2img import interrupt
from modules.sumi.services.training.lora_settings import (
    LORA_ALGOS,
    SAVE_PRECISIONS,
    UNET_TARGETS,
    LoraTrainingSettings,
)

if TYPE_CHECKING:
    from modules.sumi.app import App


@dataclass
class LoraPanel:
    app: App
    controls: dict[str, Any] = field(default_factory=dict)

    def wire(self, outputs: list[Any], status: Any) -> None:
        names = list(self.controls["fields"])
        self.controls["train"].click(
            partial(train_lora, self.app, names),
            inputs=[self.controls["fields"][n] for n in names],
            outputs=outputs,
            api_visibility="undocumented",
            concurrency_limit=None,
        )
        self.controls["interrupt"].click(
            partial(interrupt, self.app), api_visibility="undocumented", concurrency_limit=None
        )


def create_lora_panel(app: App) -> LoraPanel:
    panel = LoraPanel(app)
    f: dict[str, Any] = {}
    d = _defaults()
    with gr.Tab("LoRA", id="train_lora", elem_id="train_lora_tab"):
        with gr.Row():
            f["output_name"] = gr.Textbox(
                label="LoRA name (file in models/Lora)", elem_id="train_lora_output_name"
            )
            f["caption_prefix"] = gr.Textbox(
                label="Trigger word / caption prefix",
                value=d.caption_prefix,
                elem_id="train_lora_caption_prefix",
            )
        f["data_root"] = gr.Textbox(
            label="Dataset directory",
            placeholder="Images with a .txt caption each",
            elem_id="train_lora_data_root",
        )
        with gr.Row():
            f["algo"] = gr.Dropdown(
                label="Network type", choices=list(LORA_ALGOS), value=d.algo, elem_id="train_lora_algo"
            )
            f["rank"] = gr.Number(label="Rank (dim)", value=d.rank, precision=0, elem_id="train_lora_rank")
            f["alpha"] = gr.Number(label="Alpha", value=d.alpha, elem_id="train_lora_alpha")
            f["conv_rank"] = gr.Number(
                label="Conv rank (0 = none)", value=d.conv_rank, precision=0, elem_id="train_lora_conv_rank"
            )
            f["conv_alpha"] = gr.Number(
                label="Conv alpha", value=d.conv_alpha, elem_id="train_lora_conv_alpha"
            )
        with gr.Row():
            f["unet_target"] = gr.Dropdown(
                label="UNet layers",
                choices=list(UNET_TARGETS),
                value=d.unet_target,
                elem_id="train_lora_unet_target",
            )
            f["train_text_encoder"] = gr.Checkbox(
                label="Train the text encoder",
                value=d.train_text_encoder,
                elem_id="train_lora_train_text_encoder",
            )
        with gr.Row():
            f["learn_rate"] = gr.Textbox(
                label="Learning rate (A1111 schedule syntax)",
                value=d.learn_rate,
                elem_id="train_lora_learn_rate",
            )
            f["unet_lr"] = gr.Number(
                label="UNet learning rate (0 = the schedule)", value=0, elem_id="train_lora_unet_lr"
            )
            f["text_encoder_lr"] = gr.Number(
                label="Text encoder learning rate (0 = the schedule)",
                value=0,
                elem_id="train_lora_text_encoder_lr",
            )
            f["optimizer"] = gr.Dropdown(
                label="Optimizer", choices=list(OPTIMIZERS), value=d.optimizer, elem_id="train_lora_optimizer"
            )
        with gr.Row():
            f["batch_size"] = gr.Number(
                label="Batch size", value=d.batch_size, precision=0, elem_id="train_lora_batch_size"
            )
            f["gradient_step"] = gr.Number(
                label="Gradient accumulation steps",
                value=d.gradient_step,
                precision=0,
                elem_id="train_lora_gradient_step",
            )
            f["steps"] = gr.Number(label="Max steps", value=d.steps, precision=0, elem_id="train_lora_steps")
        with gr.Row():
            f["training_width"] = gr.Slider(
                64, 2048, step=64, value=d.training_width, label="Width", elem_id="train_lora_width"
            )
            f["training_height"] = gr.Slider(
                64, 2048, step=64, value=d.training_height, label="Height", elem_id="train_lora_height"
            )
            f["buckets"] = gr.Checkbox(
                label="Aspect-ratio buckets", value=d.buckets, elem_id="train_lora_buckets"
            )
        with gr.Row():
            f["shuffle_tags"] = gr.Checkbox(
                label="Shuffle caption tags", value=d.shuffle_tags, elem_id="train_lora_shuffle_tags"
            )
            f["keep_tokens"] = gr.Number(
                label="Keep first N tags", value=d.keep_tokens, precision=0, elem_id="train_lora_keep_tokens"
            )
            f["tag_drop_out"] = gr.Slider(
                0, 1, step=0.05, value=d.tag_drop_out, label="Tag dropout", elem_id="train_lora_tag_drop_out"
            )
            f["flip"] = gr.Checkbox(label="Random horizontal flip", value=d.flip, elem_id="train_lora_flip")
            f["cache_latents"] = gr.Checkbox(
                label="Cache latents", value=d.cache_latents, elem_id="train_lora_cache_latents"
            )
        with gr.Row():
            f["offset_noise"] = gr.Slider(
                0,
                0.3,
                step=0.01,
                value=d.offset_noise,
                label="Offset noise",
                elem_id="train_lora_offset_noise",
            )
            f["min_snr_gamma"] = gr.Number(
                label="Min-SNR gamma (0 = off)", value=0, elem_id="train_lora_min_snr_gamma"
            )
            f["debiased_estimation"] = gr.Checkbox(
                label="Debiased estimation loss",
                value=d.debiased_estimation,
                elem_id="train_lora_debiased_estimation",
            )
            f["mixed_precision"] = gr.Dropdown(
                label="Mixed precision",
                choices=list(PRECISIONS),
                value=d.mixed_precision,
                elem_id="train_lora_mixed_precision",
            )
            f["gradient_checkpointing"] = gr.Checkbox(
                label="Gradient checkpointing",
                value=d.gradient_checkpointing,
                elem_id="train_lora_gradient_checkpointing",
            )
        with gr.Row():
            f["save_every"] = gr.Number(
                label="Save a copy every N steps (0 = off)",
                value=d.save_every,
                precision=0,
                elem_id="train_lora_save_every",
            )
            f["create_image_every"] = gr.Number(
                label="Make a sample every N steps (0 = off)",
                value=d.create_image_every,
                precision=0,
                elem_id="train_lora_create_image_every",
            )
            f["save_precision"] = gr.Dropdown(
                label="Save as",
                choices=list(SAVE_PRECISIONS),
                value=d.save_precision,
                elem_id="train_lora_save_precision",
            )
        with gr.Accordion("Samples", open=False, elem_id="train_lora_preview"):
            f["preview_prompt"] = gr.Textbox(
                label="Sample prompt (empty: the first caption)", elem_id="train_lora_preview_prompt"
            )
            f["preview_negative_prompt"] = gr.Textbox(
                label="Sample negative prompt", elem_id="train_lora_preview_negative_prompt"
            )
            with gr.Row():
                f["preview_steps"] = gr.Number(
                    label="Steps", value=d.preview_steps, precision=0, elem_id="train_lora_preview_steps"
                )
                f["preview_sampler_name"] = gr.Dropdown(
                    label="Sampler",
                    choices=[spec.name for spec in SAMPLERS],
                    value=d.preview_sampler_name,
                    elem_id="train_lora_preview_sampler",
                )
                f["preview_cfg_scale"] = gr.Number(
                    label="CFG scale", value=d.preview_cfg_scale, elem_id="train_lora_preview_cfg_scale"
                )
                f["preview_seed"] = gr.Number(
                    label="Seed", value=d.preview_seed, precision=0, elem_id="train_lora_preview_seed"
                )
        with gr.Row():
            f["seed"] = gr.Number(label="Training seed", value=d.seed, precision=0, elem_id="train_lora_seed")
            f["resume"] = gr.Checkbox(
                label="Resume from the saved state", value=d.resume, elem_id="train_lora_resume"
            )
        with gr.Row():
            panel.controls["interrupt"] = gr.Button("Interrupt", elem_id="train_lora_interrupt")
            panel.controls["train"] = gr.Button("Train LoRA", variant="primary", elem_id="train_lora_train")
    panel.controls["fields"] = f
    return panel


def _defaults() -> SimpleNamespace:
    """The settings' field defaults (the settings themselves refuse an empty name, so are not made)."""
    return SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(LoraTrainingSettings)})


def settings_from_ui(names: list[str], values: tuple[Any, ...]) -> LoraTrainingSettings:
    """The panel's values as settings (see `train_panel_values`)."""
    return settings_from_panel(LoraTrainingSettings, names, values, stripped=("output_name", "data_root"))


def train_lora(app: App, names: list[str], *values: Any) -> Iterator[tuple[Any, ...]]:
    try:
        run, job = app.lora_training.submit(settings_from_ui(names, values))
    except EngineError as exc:
        yield "", f'<div class="sumi-error">{html.escape(str(exc))}</div>', gr.skip(), gr.skip()
        return
    yield from train_monitor.watch(app, run, job.future)
