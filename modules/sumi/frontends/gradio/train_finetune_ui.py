"""The Train tab's Fine-tune / DreamBooth panel (Sumi's): the loaded checkpoint trained on a folder of
captioned images, optionally with DreamBooth's instance prompt and class images (made by Sumi from the
class prompt), saved to models/Stable-diffusion and listed in the checkpoint dropdown when it ends."""

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
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings
from modules.sumi.services.training.lora_settings import SAVE_PRECISIONS

if TYPE_CHECKING:
    from modules.sumi.app import App

STRIPPED = ("output_name", "data_root", "class_data_root")
SAMPLER_NAMES = [spec.name for spec in SAMPLERS]


@dataclass
class FinetunePanel:
    app: App
    controls: dict[str, Any] = field(default_factory=dict)

    def wire(self, outputs: list[Any]) -> None:
        names = list(self.controls["fields"])
        self.controls["train"].click(
            partial(train_finetune, self.app, names),
            inputs=[self.controls["fields"][n] for n in names],
            outputs=outputs,
            api_visibility="undocumented",
            concurrency_limit=None,
        )
        self.controls["interrupt"].click(
            partial(interrupt, self.app), api_visibility="undocumented", concurrency_limit=None
        )


def _id(name: str) -> str:
    return f"train_finetune_{name}"


def create_finetune_panel(app: App) -> FinetunePanel:
    panel = FinetunePanel(app)
    f: dict[str, Any] = {}
    d = _defaults()
    with gr.Tab("Fine-tune", id="train_finetune", elem_id="train_finetune_tab"):  # short: 7 tabs share a row
        gr.Markdown(
            "Trains the loaded checkpoint itself into a new one. With an instance prompt (and class images "
            "for prior preservation) this is **DreamBooth**."
        )
        with gr.Row():
            f["output_name"] = gr.Textbox(
                label="Checkpoint name (file in models/Stable-diffusion)", elem_id=_id("output_name")
            )
            f["instance_prompt"] = gr.Textbox(
                label="Instance prompt (DreamBooth: starts every caption, e.g. 'a photo of sks dog')",
                elem_id=_id("instance_prompt"),
            )
        f["data_root"] = gr.Textbox(
            label="Dataset directory",
            placeholder="Images, each with a .txt caption or none",
            elem_id=_id("data_root"),
        )
        _class_images(f, d)
        _rates(f, d)
        _dataset_options(f, d)
        _training_options(f, d)
        _preview(f, d)
        with gr.Row():
            f["seed"] = gr.Number(label="Training seed", value=d.seed, precision=0, elem_id=_id("seed"))
            f["resume"] = gr.Checkbox(
                label="Resume from the saved state", value=d.resume, elem_id=_id("resume")
            )
            f["training_comment"] = gr.Textbox(
                label="Comment (in the metadata)", elem_id=_id("training_comment")
            )
        with gr.Row():
            panel.controls["interrupt"] = gr.Button("Interrupt", elem_id=_id("interrupt"))
            panel.controls["train"] = gr.Button("Train checkpoint", variant="primary", elem_id=_id("train"))
    panel.controls["fields"] = f
    return panel


def _class_images(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Accordion("Class images (DreamBooth prior preservation)", open=False, elem_id=_id("class")):
        with gr.Row():
            f["class_data_root"] = gr.Textbox(
                label="Class images directory (empty = no prior preservation; missing images are generated)",
                elem_id=_id("class_data_root"),
            )
            f["class_prompt"] = gr.Textbox(
                label="Class prompt, e.g. 'a photo of a dog'", elem_id=_id("class_prompt")
            )
        f["class_negative_prompt"] = gr.Textbox(
            label="Class negative prompt", elem_id=_id("class_negative_prompt")
        )
        with gr.Row():
            f["num_class_images"] = gr.Number(
                label="Class images", value=d.num_class_images, precision=0, elem_id=_id("num_class_images")
            )
            f["prior_loss_weight"] = gr.Number(
                label="Prior loss weight", value=d.prior_loss_weight, elem_id=_id("prior_loss_weight")
            )
            f["class_steps"] = gr.Number(
                label="Class image steps", value=d.class_steps, precision=0, elem_id=_id("class_steps")
            )
            f["class_sampler_name"] = gr.Dropdown(
                label="Class image sampler",
                choices=SAMPLER_NAMES,
                value=d.class_sampler_name,
                elem_id=_id("class_sampler"),
            )
            f["class_cfg_scale"] = gr.Number(
                label="Class image CFG scale", value=d.class_cfg_scale, elem_id=_id("class_cfg_scale")
            )


def _rates(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Row():
        f["learn_rate"] = gr.Textbox(
            label="Learning rate (A1111 schedule syntax)", value=d.learn_rate, elem_id=_id("learn_rate")
        )
        f["unet_lr"] = gr.Number(
            label="UNet learning rate (0 = the schedule)", value=0, elem_id=_id("unet_lr")
        )
        f["train_text_encoder"] = gr.Checkbox(
            label="Train the text encoder", value=d.train_text_encoder, elem_id=_id("train_text_encoder")
        )
        f["text_encoder_lr"] = gr.Number(
            label="Text encoder learning rate (0 = the schedule)", value=0, elem_id=_id("text_encoder_lr")
        )
        f["optimizer"] = gr.Dropdown(
            label="Optimizer", choices=list(OPTIMIZERS), value=d.optimizer, elem_id=_id("optimizer")
        )
    with gr.Row():
        f["batch_size"] = gr.Number(
            label="Batch size", value=d.batch_size, precision=0, elem_id=_id("batch_size")
        )
        f["gradient_step"] = gr.Number(
            label="Gradient accumulation steps",
            value=d.gradient_step,
            precision=0,
            elem_id=_id("gradient_step"),
        )
        f["steps"] = gr.Number(label="Max steps", value=d.steps, precision=0, elem_id=_id("steps"))


def _dataset_options(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Row():
        f["training_width"] = gr.Slider(
            64, 2048, step=64, value=d.training_width, label="Width", elem_id=_id("width")
        )
        f["training_height"] = gr.Slider(
            64, 2048, step=64, value=d.training_height, label="Height", elem_id=_id("height")
        )
        f["buckets"] = gr.Checkbox(label="Aspect-ratio buckets", value=d.buckets, elem_id=_id("buckets"))
    with gr.Row():
        f["shuffle_tags"] = gr.Checkbox(
            label="Shuffle caption tags", value=d.shuffle_tags, elem_id=_id("shuffle_tags")
        )
        f["keep_tokens"] = gr.Number(
            label="Keep first N tags (after the instance prompt)",
            value=d.keep_tokens,
            precision=0,
            elem_id=_id("keep_tokens"),
        )
        f["tag_drop_out"] = gr.Slider(
            0, 1, step=0.05, value=d.tag_drop_out, label="Tag dropout", elem_id=_id("tag_drop_out")
        )
        f["flip"] = gr.Checkbox(label="Random horizontal flip", value=d.flip, elem_id=_id("flip"))
        f["cache_latents"] = gr.Checkbox(
            label="Cache latents", value=d.cache_latents, elem_id=_id("cache_latents")
        )


def _training_options(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Row():
        f["ema"] = gr.Checkbox(label="EMA (save the averaged weights)", value=d.ema, elem_id=_id("ema"))
        f["ema_decay"] = gr.Number(label="EMA decay", value=d.ema_decay, elem_id=_id("ema_decay"))
        f["offset_noise"] = gr.Slider(
            0, 0.3, step=0.01, value=d.offset_noise, label="Offset noise", elem_id=_id("offset_noise")
        )
        f["min_snr_gamma"] = gr.Number(label="Min-SNR gamma (0 = off)", value=0, elem_id=_id("min_snr_gamma"))
        f["debiased_estimation"] = gr.Checkbox(
            label="Debiased estimation loss", value=d.debiased_estimation, elem_id=_id("debiased_estimation")
        )
    with gr.Row():
        f["mixed_precision"] = gr.Dropdown(
            label="Mixed precision",
            choices=list(PRECISIONS),
            value=d.mixed_precision,
            elem_id=_id("mixed_precision"),
        )
        f["gradient_checkpointing"] = gr.Checkbox(
            label="Gradient checkpointing",
            value=d.gradient_checkpointing,
            elem_id=_id("gradient_checkpointing"),
        )
        f["save_every"] = gr.Number(
            label="Save a checkpoint every N steps (0 = off)",
            value=d.save_every,
            precision=0,
            elem_id=_id("save_every"),
        )
        f["create_image_every"] = gr.Number(
            label="Make a sample every N steps (0 = off)",
            value=d.create_image_every,
            precision=0,
            elem_id=_id("create_image_every"),
        )
        f["save_precision"] = gr.Dropdown(
            label="Save as",
            choices=list(SAVE_PRECISIONS),
            value=d.save_precision,
            elem_id=_id("save_precision"),
        )
        f["save_state"] = gr.Checkbox(
            label="Save the resume state (about 4x the model)", value=d.save_state, elem_id=_id("save_state")
        )


def _preview(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Accordion("Samples", open=False, elem_id=_id("preview")):
        f["preview_prompt"] = gr.Textbox(
            label="Sample prompt (empty: the first caption)", elem_id=_id("preview_prompt")
        )
        f["preview_negative_prompt"] = gr.Textbox(
            label="Sample negative prompt", elem_id=_id("preview_negative_prompt")
        )
        with gr.Row():
            f["preview_steps"] = gr.Number(
                label="Steps", value=d.preview_steps, precision=0, elem_id=_id("preview_steps")
            )
            f["preview_sampler_name"] = gr.Dropdown(
                label="Sampler",
                choices=SAMPLER_NAMES,
                value=d.preview_sampler_name,
                elem_id=_id("preview_sampler"),
            )
            f["preview_cfg_scale"] = gr.Number(
                label="CFG scale", value=d.preview_cfg_scale, elem_id=_id("preview_cfg_scale")
            )
            f["preview_seed"] = gr.Number(
                label="Seed", value=d.preview_seed, precision=0, elem_id=_id("preview_seed")
            )


def _defaults() -> SimpleNamespace:
    """The settings' field defaults (the settings themselves refuse an empty name, so are not made)."""
    return SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(FinetuneTrainingSettings)})


def settings_from_ui(names: list[str], values: tuple[Any, ...]) -> FinetuneTrainingSettings:
    """The panel's values as settings (see `train_panel_values`)."""
    return settings_from_panel(FinetuneTrainingSettings, names, values, stripped=STRIPPED)


def train_finetune(app: App, names: list[str], *values: Any) -> Iterator[tuple[Any, ...]]:
    try:
        run, job = app.finetune_training.submit(settings_from_ui(names, values))
    except EngineError as exc:
        yield "", f'<div class="sumi-error">{html.escape(str(exc))}</div>', gr.skip(), gr.skip()
        return
    yield from train_monitor.watch(app, run, job.future)
