"""The Train tab's ControlNet panel (Sumi's): a ControlNet trained on a folder of captioned images and
their control images (a conditioning folder, or a model-free preprocessor such as canny that makes them),
written to models/ControlNet in sd-webui-controlnet's layout, in the units' model list once saved."""

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
from modules.sumi.services.training.controlnet_settings import (
    SAVE_PRECISIONS,
    ControlNetTrainingSettings,
    model_free_preprocessors,
)

if TYPE_CHECKING:
    from modules.sumi.app import App

FOLDER_CHOICE = "Conditioning folder"  # the preprocessor dropdown's "read the control images" entry
PATHS = ("output_name", "data_root", "conditioning_data_root", "preview_conditioning")


@dataclass
class ControlNetPanel:
    app: App
    controls: dict[str, Any] = field(default_factory=dict)

    def wire(self, outputs: list[Any], status: Any) -> None:
        names = list(self.controls["fields"])
        self.controls["train"].click(
            partial(train_controlnet, self.app, names),
            inputs=[self.controls["fields"][n] for n in names],
            outputs=outputs,
            api_visibility="undocumented",
            concurrency_limit=None,
        )
        self.controls["interrupt"].click(
            partial(interrupt, self.app), api_visibility="undocumented", concurrency_limit=None
        )


def preprocessor_choices() -> list[str]:
    """The dropdown: the conditioning folder first, then the preprocessors training can run."""
    return [FOLDER_CHOICE, *(name for name in model_free_preprocessors() if name != "none")]


def create_controlnet_panel(app: App) -> ControlNetPanel:
    panel = ControlNetPanel(app)
    f: dict[str, Any] = {}
    d = _defaults()
    with gr.Tab("ControlNet", id="train_controlnet", elem_id="train_controlnet_tab"):
        _dataset_rows(f, d)
        _training_rows(f, d)
        _sample_rows(f, d)
        with gr.Row():
            f["seed"] = gr.Number(
                label="Training seed", value=d.seed, precision=0, elem_id="train_controlnet_seed"
            )
            f["resume"] = gr.Checkbox(
                label="Resume from the saved state", value=d.resume, elem_id="train_controlnet_resume"
            )
        with gr.Row():
            panel.controls["interrupt"] = gr.Button("Interrupt", elem_id="train_controlnet_interrupt")
            panel.controls["train"] = gr.Button(
                "Train ControlNet", variant="primary", elem_id="train_controlnet_train"
            )
    panel.controls["fields"] = f
    return panel


def _dataset_rows(f: dict[str, Any], d: SimpleNamespace) -> None:
    f["output_name"] = gr.Textbox(
        label="ControlNet name (file in models/ControlNet)", elem_id="train_controlnet_output_name"
    )
    f["data_root"] = gr.Textbox(
        label="Dataset directory",
        placeholder="Images with a .txt caption each",
        elem_id="train_controlnet_data_root",
    )
    with gr.Row():
        f["preprocessor"] = gr.Dropdown(
            label="Control images from",
            choices=preprocessor_choices(),
            value=FOLDER_CHOICE,
            elem_id="train_controlnet_preprocessor",
        )
        f["conditioning_data_root"] = gr.Textbox(
            label="Conditioning directory (empty: <dataset>/conditioning)",
            placeholder="Control images with the training images' file names",
            elem_id="train_controlnet_conditioning_data_root",
        )
    with gr.Row():
        f["preprocessor_resolution"] = gr.Number(
            label="Preprocessor resolution (-1 = the training size)",
            value=d.preprocessor_resolution,
            precision=0,
            elem_id="train_controlnet_preprocessor_resolution",
        )
        f["preprocessor_threshold_a"] = gr.Number(
            label="Threshold A (-1 = default)",
            value=d.preprocessor_threshold_a,
            elem_id="train_controlnet_threshold_a",
        )
        f["preprocessor_threshold_b"] = gr.Number(
            label="Threshold B (-1 = default)",
            value=d.preprocessor_threshold_b,
            elem_id="train_controlnet_threshold_b",
        )


def _training_rows(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Row():
        f["learn_rate"] = gr.Textbox(
            label="Learning rate (A1111 schedule syntax)",
            value=d.learn_rate,
            elem_id="train_controlnet_learn_rate",
        )
        f["optimizer"] = gr.Dropdown(
            label="Optimizer",
            choices=list(OPTIMIZERS),
            value=d.optimizer,
            elem_id="train_controlnet_optimizer",
        )
        f["batch_size"] = gr.Number(
            label="Batch size", value=d.batch_size, precision=0, elem_id="train_controlnet_batch_size"
        )
        f["gradient_step"] = gr.Number(
            label="Gradient accumulation steps",
            value=d.gradient_step,
            precision=0,
            elem_id="train_controlnet_gradient_step",
        )
        f["steps"] = gr.Number(
            label="Max steps", value=d.steps, precision=0, elem_id="train_controlnet_steps"
        )
    with gr.Row():
        f["training_width"] = gr.Slider(
            64, 2048, step=64, value=d.training_width, label="Width", elem_id="train_controlnet_width"
        )
        f["training_height"] = gr.Slider(
            64, 2048, step=64, value=d.training_height, label="Height", elem_id="train_controlnet_height"
        )
        f["cache_latents"] = gr.Checkbox(
            label="Cache latents", value=d.cache_latents, elem_id="train_controlnet_cache_latents"
        )
    with gr.Row():
        f["proportion_empty_prompts"] = gr.Slider(
            0,
            1,
            step=0.05,
            value=d.proportion_empty_prompts,
            label="Empty prompt probability",
            elem_id="train_controlnet_proportion_empty_prompts",
        )
        f["offset_noise"] = gr.Slider(
            0,
            0.3,
            step=0.01,
            value=d.offset_noise,
            label="Offset noise",
            elem_id="train_controlnet_offset_noise",
        )
        f["min_snr_gamma"] = gr.Number(
            label="Min-SNR gamma (0 = off)", value=0, elem_id="train_controlnet_min_snr_gamma"
        )
        f["debiased_estimation"] = gr.Checkbox(
            label="Debiased estimation loss",
            value=d.debiased_estimation,
            elem_id="train_controlnet_debiased_estimation",
        )
    with gr.Row():
        f["mixed_precision"] = gr.Dropdown(
            label="Mixed precision",
            choices=list(PRECISIONS),
            value=d.mixed_precision,
            elem_id="train_controlnet_mixed_precision",
        )
        f["gradient_checkpointing"] = gr.Checkbox(
            label="Gradient checkpointing",
            value=d.gradient_checkpointing,
            elem_id="train_controlnet_gradient_checkpointing",
        )
        f["save_every"] = gr.Number(
            label="Save a copy every N steps (0 = off)",
            value=d.save_every,
            precision=0,
            elem_id="train_controlnet_save_every",
        )
        f["create_image_every"] = gr.Number(
            label="Make a sample every N steps (0 = off)",
            value=d.create_image_every,
            precision=0,
            elem_id="train_controlnet_create_image_every",
        )
        f["save_precision"] = gr.Dropdown(
            label="Save as",
            choices=list(SAVE_PRECISIONS),
            value=d.save_precision,
            elem_id="train_controlnet_save_precision",
        )


def _sample_rows(f: dict[str, Any], d: SimpleNamespace) -> None:
    with gr.Accordion("Samples", open=False, elem_id="train_controlnet_preview"):
        f["preview_prompt"] = gr.Textbox(
            label="Sample prompt (empty: the first caption)", elem_id="train_controlnet_preview_prompt"
        )
        f["preview_negative_prompt"] = gr.Textbox(
            label="Sample negative prompt", elem_id="train_controlnet_preview_negative_prompt"
        )
        f["preview_conditioning"] = gr.Textbox(
            label="Sample control image (empty: the first training image's)",
            placeholder="A file in the data folder; a preprocessor, when chosen, runs on it too",
            elem_id="train_controlnet_preview_conditioning",
        )
        with gr.Row():
            f["preview_steps"] = gr.Number(
                label="Steps", value=d.preview_steps, precision=0, elem_id="train_controlnet_preview_steps"
            )
            f["preview_sampler_name"] = gr.Dropdown(
                label="Sampler",
                choices=[spec.name for spec in SAMPLERS],
                value=d.preview_sampler_name,
                elem_id="train_controlnet_preview_sampler",
            )
            f["preview_cfg_scale"] = gr.Number(
                label="CFG scale", value=d.preview_cfg_scale, elem_id="train_controlnet_preview_cfg_scale"
            )
            f["preview_seed"] = gr.Number(
                label="Seed", value=d.preview_seed, precision=0, elem_id="train_controlnet_preview_seed"
            )


def _defaults() -> SimpleNamespace:
    """The settings' field defaults (the settings themselves refuse an empty name, so are not made)."""
    return SimpleNamespace(**{f.name: f.default for f in dataclasses.fields(ControlNetTrainingSettings)})


def settings_from_ui(names: list[str], values: tuple[Any, ...]) -> ControlNetTrainingSettings:
    """The panel's values as settings (see `train_panel_values`); the dropdown's conditioning-folder
    entry means no preprocessor."""
    values = tuple(
        "" if name == "preprocessor" and value in (None, FOLDER_CHOICE) else value
        for name, value in zip(names, values, strict=True)
    )
    return settings_from_panel(ControlNetTrainingSettings, names, values, stripped=PATHS)


def train_controlnet(app: App, names: list[str], *values: Any) -> Iterator[tuple[Any, ...]]:
    try:
        run, job = app.controlnet_training.submit(settings_from_ui(names, values))
    except EngineError as exc:
        yield "", f'<div class="sumi-error">{html.escape(str(exc))}</div>', gr.skip(), gr.skip()
        return
    yield from train_monitor.watch(app, run, job.future)
