"""The Train tab (A1111's, plus Sumi's LoRA and ControlNet panels): Create embedding, Create hypernetwork,
Train, LoRA, ControlNet, and the tabs extensions add through `on_ui_train_tabs`; on the right the run's
status, a loss plot that grows while it trains, the sample images as they are made, and the files written.

Training runs on the one worker queue like a generation job (Interrupt stops it and keeps a usable
file); the created and trained files are listed at once in the prompt's extra networks.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.sampling.samplers import SAMPLERS
from modules.sumi.engine.training.hypernetwork import WEIGHT_INITS
from modules.sumi.engine.training.loop import CLIP_MODES
from modules.sumi.engine.training.model_io import LATENT_SAMPLING, PRECISIONS
from modules.sumi.frontends.gradio import train_monitor
from modules.sumi.frontends.gradio.train_controlnet_ui import create_controlnet_panel
from modules.sumi.frontends.gradio.train_dataset_ui import create_dataset_panel
from modules.sumi.frontends.gradio.train_finetune_ui import create_finetune_panel
from modules.sumi.frontends.gradio.train_lora_ui import create_lora_panel
from modules.sumi.frontends.gradio.txt2img import interrupt
from modules.sumi.services.scripts.callbacks import UiTrainTabParams
from modules.sumi.services.training.a1111_settings import (
    EmbeddingTrainingSettings,
    HypernetworkTrainingSettings,
)

if TYPE_CHECKING:
    from modules.sumi.app import App

ACTIVATIONS = (
    "linear",
    "relu",
    "leakyrelu",
    "elu",
    "swish",
    "tanh",
    "sigmoid",
    "celu",
    "gelu",
    "glu",
    "hardshrink",
)
HYPERNETWORK_SIZES = ("768", "1024", "320", "640", "1280")
PREVIEW_FIELDS = (
    "prompt",
    "negative_prompt",
    "steps",
    "sampler_name",
    "cfg_scale",
    "seed",
    "width",
    "height",
)


@dataclass
class Monitor:
    """The right-hand column every panel's Train button writes to."""

    output: gr.Textbox
    outcome: gr.HTML
    loss_plot: gr.LinePlot
    samples: gr.Gallery

    @property
    def outputs(self) -> list[Any]:
        return [self.output, self.outcome, self.loss_plot, self.samples]


def create_train_tab(app: App, txt2img_controls: dict[str, Any]) -> None:
    """Lay out the tab (call inside a `gr.Tab`) and wire its events."""
    with gr.Row(equal_height=False, elem_id="train_row"):
        with gr.Column(scale=3, elem_id="train_settings"), gr.Tabs(elem_id="train_tabs"):
            embedding = _create_embedding_panel(app)
            hypernetwork = _create_hypernetwork_panel(app)
            train = _train_panel(app)
            lora = create_lora_panel(app)
            finetune = create_finetune_panel(app)
            controlnet = create_controlnet_panel(app)
            create_dataset_panel(app)
            _extension_train_tabs(app, txt2img_controls)
        with gr.Column(scale=2, elem_id="train_monitor"):
            monitor = _monitor()
    _wire_create(app, embedding, hypernetwork, train, monitor)
    _wire_train(app, train, monitor, txt2img_controls)
    lora.wire(monitor.outputs, monitor.output)
    controlnet.wire(monitor.outputs, monitor.output)
    finetune.wire(monitor.outputs)


def _monitor() -> Monitor:
    output = gr.Textbox(value="", show_label=False, interactive=False, elem_id="ti_output")
    outcome = gr.HTML(value="", elem_id="ti_error")
    plot = gr.LinePlot(
        value=train_monitor.loss_frame_empty(),
        x="step",
        y="loss",
        title="Loss",
        elem_id="train_loss_plot",
        height=260,
    )
    samples = gr.Gallery(
        label="Samples", columns=4, height="auto", elem_id="train_samples", interactive=False
    )
    return Monitor(output, outcome, plot, samples)


# -- Create embedding / Create hypernetwork ---------------------------------------------------------------
def _create_embedding_panel(app: App) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Tab("Create embedding", id="create_embedding", elem_id="train_create_embedding_tab"):
        c["name"] = gr.Textbox(label="Name", elem_id="train_new_embedding_name")
        c["init_text"] = gr.Textbox(
            label="Initialization text", value="*", elem_id="train_initialization_text"
        )
        c["nvpt"] = gr.Slider(
            label="Number of vectors per token", minimum=1, maximum=75, step=1, value=1, elem_id="train_nvpt"
        )
        c["overwrite"] = gr.Checkbox(
            label="Overwrite Old Embedding", value=False, elem_id="train_overwrite_old_embedding"
        )
        c["create"] = gr.Button("Create embedding", variant="primary", elem_id="train_create_embedding")
    return c


def _create_hypernetwork_panel(app: App) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Tab("Create hypernetwork", id="create_hypernetwork", elem_id="train_create_hypernetwork_tab"):
        c["name"] = gr.Textbox(label="Name", elem_id="train_new_hypernetwork_name")
        c["sizes"] = gr.CheckboxGroup(
            label="Modules",
            value=["768", "320", "640", "1280"],
            choices=list(HYPERNETWORK_SIZES),
            elem_id="train_new_hypernetwork_sizes",
        )
        c["layer_structure"] = gr.Textbox(
            label="Enter hypernetwork layer structure",
            value="1, 2, 1",
            placeholder="1st and last digit must be 1. ex:'1, 2, 1'",
            elem_id="train_new_hypernetwork_layer_structure",
        )
        c["activation"] = gr.Dropdown(
            label="Select activation function of hypernetwork. Recommended : Swish / Linear(none)",
            choices=list(ACTIVATIONS),
            value="linear",
            elem_id="train_new_hypernetwork_activation_func",
        )
        c["weight_init"] = gr.Dropdown(
            label="Select Layer weights initialization. Recommended: Kaiming for relu-like, Xavier for sigmoid-like, Normal otherwise",
            choices=list(WEIGHT_INITS),
            value="Normal",
            elem_id="train_new_hypernetwork_initialization_option",
        )
        c["layer_norm"] = gr.Checkbox(
            label="Add layer normalization", elem_id="train_new_hypernetwork_add_layer_norm"
        )
        c["use_dropout"] = gr.Checkbox(label="Use dropout", elem_id="train_new_hypernetwork_use_dropout")
        c["dropout_structure"] = gr.Textbox(
            label="Enter hypernetwork Dropout structure (or empty). Recommended : 0~0.35 incrementing sequence: 0, 0.05, 0.15",
            placeholder="1st and last digit must be 0 and values should be between 0 and 1. ex:'0, 0.01, 0'",
            value="0, 0, 0",
            elem_id="train_new_hypernetwork_dropout_structure",
        )
        c["overwrite"] = gr.Checkbox(
            label="Overwrite Old Hypernetwork", value=False, elem_id="train_overwrite_old_hypernetwork"
        )
        c["create"] = gr.Button("Create hypernetwork", variant="primary", elem_id="train_create_hypernetwork")
    return c


def _wire_create(app: App, embedding: dict, hypernetwork: dict, train: dict, monitor: Monitor) -> None:
    embedding["create"].click(
        partial(_create_embedding, app),
        inputs=[embedding[k] for k in ("name", "nvpt", "overwrite", "init_text")],
        outputs=[train["embedding"], monitor.output, monitor.outcome],
        api_visibility="undocumented",
    )
    hypernetwork["create"].click(
        partial(_create_hypernetwork, app),
        inputs=[
            hypernetwork[k]
            for k in (
                "name",
                "sizes",
                "overwrite",
                "layer_structure",
                "activation",
                "weight_init",
                "layer_norm",
                "use_dropout",
                "dropout_structure",
            )
        ],
        outputs=[train["hypernetwork"], monitor.output, monitor.outcome],
        api_visibility="undocumented",
    )


def _create_embedding(
    app: App, name: str, nvpt: float, overwrite: bool, init_text: str
) -> tuple[Any, str, str]:
    try:
        path = app.a1111_training.create_embedding(name, int(nvpt), bool(overwrite), init_text)
    except EngineError as exc:
        return gr.skip(), "", _error(exc)
    names = _embedding_names(app)
    return gr.update(choices=names, value=path.stem), f"Created: {path.name}", ""


def _create_hypernetwork(
    app: App,
    name,
    sizes,
    overwrite,
    layer_structure,
    activation,
    weight_init,
    layer_norm,
    use_dropout,
    dropout_structure,
) -> tuple[Any, str, str]:
    try:
        path = app.a1111_training.create_hypernetwork(
            name,
            list(sizes or []),
            bool(overwrite),
            layer_structure,
            activation,
            weight_init,
            bool(layer_norm),
            bool(use_dropout),
            dropout_structure if use_dropout else None,
        )
    except EngineError as exc:
        return gr.skip(), "", _error(exc)
    return gr.update(choices=_hypernetwork_names(app), value=path.stem), f"Created: {path.name}", ""


# -- Train (A1111's embedding / hypernetwork panel) ---------------------------------------------------------
def _train_panel(app: App) -> dict[str, Any]:
    c: dict[str, Any] = {}
    with gr.Tab("Train", id="train", elem_id="train_train_tab"):
        gr.HTML(
            "<p>Train an embedding or hypernetwork; the images go in a folder with a <code>.txt</code> caption "
            "each (or captions in the file names).</p>"
        )
        with gr.Row():
            c["embedding"] = gr.Dropdown(
                label="Embedding", choices=_embedding_names(app), elem_id="train_embedding"
            )
            c["refresh_embedding"] = gr.Button(
                "🔄",
                elem_classes=["tool"],
                size="sm",
                scale=0,
                min_width=40,
                elem_id="train_refresh_embeddings",
            )
            c["hypernetwork"] = gr.Dropdown(
                label="Hypernetwork", choices=_hypernetwork_names(app), elem_id="train_hypernetwork"
            )
            c["refresh_hypernetwork"] = gr.Button(
                "🔄",
                elem_classes=["tool"],
                size="sm",
                scale=0,
                min_width=40,
                elem_id="train_refresh_hypernetwork",
            )
        with gr.Row():
            c["embedding_learn_rate"] = gr.Textbox(
                label="Embedding Learning rate", value="0.005", elem_id="train_embedding_learn_rate"
            )
            c["hypernetwork_learn_rate"] = gr.Textbox(
                label="Hypernetwork Learning rate", value="0.00001", elem_id="train_hypernetwork_learn_rate"
            )
        with gr.Row():
            c["clip_grad_mode"] = gr.Dropdown(
                value="disabled",
                label="Gradient Clipping",
                choices=list(CLIP_MODES),
                elem_id="train_clip_grad_mode",
            )
            c["clip_grad_value"] = gr.Textbox(
                value="0.1", label="Gradient clip value", elem_id="train_clip_grad_value"
            )
        with gr.Row():
            c["batch_size"] = gr.Number(label="Batch size", value=1, precision=0, elem_id="train_batch_size")
            c["gradient_step"] = gr.Number(
                label="Gradient accumulation steps", value=1, precision=0, elem_id="train_gradient_step"
            )
        c["data_root"] = gr.Textbox(
            label="Dataset directory",
            placeholder="Path to directory with input images",
            elem_id="train_dataset_directory",
        )
        c["log_directory"] = gr.Textbox(
            label="Log directory", value="textual_inversion", elem_id="train_log_directory"
        )
        with gr.Row():
            templates = app.a1111_training.templates()
            c["template"] = gr.Dropdown(
                label="Prompt template",
                choices=templates,
                value="style_filewords.txt"
                if "style_filewords.txt" in templates
                else (templates[0] if templates else None),
                elem_id="train_template_file",
            )
            c["refresh_templates"] = gr.Button(
                "🔄",
                elem_classes=["tool"],
                size="sm",
                scale=0,
                min_width=40,
                elem_id="train_refresh_templates",
            )
        c["width"] = gr.Slider(
            minimum=64, maximum=2048, step=8, label="Width", value=512, elem_id="train_training_width"
        )
        c["height"] = gr.Slider(
            minimum=64, maximum=2048, step=8, label="Height", value=512, elem_id="train_training_height"
        )
        c["varsize"] = gr.Checkbox(label="Do not resize images", value=False, elem_id="train_varsize")
        c["steps"] = gr.Number(label="Max steps", value=100000, precision=0, elem_id="train_steps")
        with gr.Row():
            c["create_image_every"] = gr.Number(
                label="Save an image to log directory every N steps, 0 to disable",
                value=500,
                precision=0,
                elem_id="train_create_image_every",
            )
            c["save_every"] = gr.Number(
                label="Save a copy of embedding to log directory every N steps, 0 to disable",
                value=500,
                precision=0,
                elem_id="train_save_embedding_every",
            )
        c["use_weight"] = gr.Checkbox(
            label="Use PNG alpha channel as loss weight", value=False, elem_id="use_weight"
        )
        c["save_image_with_stored_embedding"] = gr.Checkbox(
            label="Save images with embedding in PNG chunks",
            value=True,
            elem_id="train_save_image_with_stored_embedding",
        )
        c["preview_from_txt2img"] = gr.Checkbox(
            label="Read parameters (prompt, etc...) from txt2img tab when making previews",
            value=False,
            elem_id="train_preview_from_txt2img",
        )
        c["shuffle_tags"] = gr.Checkbox(
            label="Shuffle tags by ',' when creating prompts.", value=False, elem_id="train_shuffle_tags"
        )
        c["tag_drop_out"] = gr.Slider(
            minimum=0,
            maximum=1,
            step=0.1,
            label="Drop out tags when creating prompts.",
            value=0,
            elem_id="train_tag_drop_out",
        )
        c["latent_sampling_method"] = gr.Radio(
            label="Choose latent sampling method",
            value="once",
            choices=list(LATENT_SAMPLING),
            elem_id="train_latent_sampling_method",
        )
        with (
            gr.Accordion(
                "Sumi: seed, offset noise, min-SNR, debiased estimation, precision",
                open=False,
                elem_id="train_sumi_extras",
            ),
            gr.Row(),
        ):
            c["seed"] = gr.Number(label="Training seed", value=0, precision=0, elem_id="train_seed")
            c["offset_noise"] = gr.Slider(
                minimum=0,
                maximum=0.3,
                step=0.01,
                label="Offset noise",
                value=0,
                elem_id="train_offset_noise",
            )
            c["min_snr_gamma"] = gr.Number(
                label="Min-SNR gamma (0 = off)", value=0, elem_id="train_min_snr_gamma"
            )
            c["debiased_estimation"] = gr.Checkbox(
                label="Debiased estimation loss", value=False, elem_id="train_debiased_estimation"
            )
            c["mixed_precision"] = gr.Dropdown(
                label="Mixed precision",
                choices=list(PRECISIONS),
                value="no",
                elem_id="train_mixed_precision",
            )
        with gr.Row():
            c["interrupt"] = gr.Button("Interrupt", elem_id="train_interrupt_training")
            c["train_hypernetwork"] = gr.Button(
                "Train Hypernetwork", variant="primary", elem_id="train_train_hypernetwork"
            )
            c["train_embedding"] = gr.Button(
                "Train Embedding", variant="primary", elem_id="train_train_embedding"
            )
    return c


COMMON = (
    "batch_size",
    "gradient_step",
    "data_root",
    "log_directory",
    "width",
    "height",
    "varsize",
    "steps",
    "clip_grad_mode",
    "clip_grad_value",
    "shuffle_tags",
    "tag_drop_out",
    "latent_sampling_method",
    "use_weight",
    "create_image_every",
    "save_every",
    "template",
    "preview_from_txt2img",
    "seed",
    "offset_noise",
    "min_snr_gamma",
    "debiased_estimation",
    "mixed_precision",
)


def _wire_train(app: App, c: dict[str, Any], monitor: Monitor, txt2img: dict[str, Any]) -> None:
    preview = [txt2img[k] for k in PREVIEW_FIELDS if k in txt2img]
    common = [c[k] for k in COMMON]
    c["train_embedding"].click(
        partial(_train, app, "embedding"),
        inputs=[
            c["embedding"],
            c["embedding_learn_rate"],
            c["save_image_with_stored_embedding"],
            *common,
            *preview,
        ],
        outputs=monitor.outputs,
        api_visibility="undocumented",
        concurrency_limit=None,
    )
    c["train_hypernetwork"].click(
        partial(_train, app, "hypernetwork"),
        inputs=[
            c["hypernetwork"],
            c["hypernetwork_learn_rate"],
            c["save_image_with_stored_embedding"],
            *common,
            *preview,
        ],
        outputs=monitor.outputs,
        api_visibility="undocumented",
        concurrency_limit=None,
    )
    c["interrupt"].click(partial(interrupt, app), api_visibility="undocumented", concurrency_limit=None)
    c["refresh_embedding"].click(
        lambda: gr.update(choices=_embedding_names(app, refresh=True)),
        outputs=c["embedding"],
        trigger_mode="always_last",
        api_visibility="undocumented",
    )
    c["refresh_hypernetwork"].click(
        lambda: gr.update(choices=_hypernetwork_names(app, refresh=True)),
        outputs=c["hypernetwork"],
        trigger_mode="always_last",
        api_visibility="undocumented",
    )
    c["refresh_templates"].click(
        lambda: gr.update(choices=app.a1111_training.templates()),
        outputs=c["template"],
        trigger_mode="always_last",
        api_visibility="undocumented",
    )


def _train(
    app: App, kind: str, name: str | None, learn_rate: str, save_with_embedding: bool, *values: Any
) -> Iterator[tuple[Any, ...]]:
    fields: dict[str, Any] = dict(zip(COMMON, values[: len(COMMON)], strict=True))
    preview: dict[str, Any] = dict(zip(PREVIEW_FIELDS, values[len(COMMON) :], strict=False))
    try:
        settings = _a1111_settings(kind, name, learn_rate, save_with_embedding, fields, preview)
        training = app.a1111_training
        run, job = (
            training.submit_embedding(settings)
            if kind == "embedding"
            else training.submit_hypernetwork(settings)
        )
    except EngineError as exc:
        yield "", _error(exc), gr.skip(), gr.skip()
        return
    yield from train_monitor.watch(app, run, job.future)


def _a1111_settings(
    kind: str,
    name: str | None,
    learn_rate: str,
    save_with_embedding: bool,
    f: dict[str, Any],
    preview: dict[str, Any],
) -> Any:
    common: dict[str, Any] = {
        "learn_rate": learn_rate,
        "batch_size": int(f["batch_size"] or 0),
        "gradient_step": int(f["gradient_step"] or 0),
        "data_root": f["data_root"] or "",
        "log_directory": f["log_directory"] or "",
        "training_width": int(f["width"]),
        "training_height": int(f["height"]),
        "varsize": bool(f["varsize"]),
        "steps": int(f["steps"] or 0),
        "clip_grad_mode": f["clip_grad_mode"],
        "clip_grad_value": f["clip_grad_value"],
        "shuffle_tags": bool(f["shuffle_tags"]),
        "tag_drop_out": float(f["tag_drop_out"] or 0),
        "latent_sampling_method": f["latent_sampling_method"],
        "use_weight": bool(f["use_weight"]),
        "create_image_every": int(f["create_image_every"] or 0),
        "template_filename": f["template"] or "",
        "preview_from_txt2img": bool(f["preview_from_txt2img"]),
        "seed": int(f["seed"] or 0),
        "offset_noise": float(f["offset_noise"] or 0),
        "min_snr_gamma": float(f["min_snr_gamma"]) if f["min_snr_gamma"] else None,
        "debiased_estimation": bool(f["debiased_estimation"]),
        "mixed_precision": f["mixed_precision"],
        **_preview_fields(preview),
    }
    save_every = int(f["save_every"] or 0)
    if kind == "embedding":
        return EmbeddingTrainingSettings(
            embedding_name=name or "",
            save_embedding_every=save_every,
            save_image_with_stored_embedding=bool(save_with_embedding),
            **common,
        )
    return HypernetworkTrainingSettings(
        hypernetwork_name=name or "", save_hypernetwork_every=save_every, **common
    )


def _preview_fields(preview: dict[str, Any]) -> dict[str, Any]:
    """txt2img's values as A1111's preview_* arguments (used when "Read parameters" is ticked)."""
    names = {
        "prompt": "preview_prompt",
        "negative_prompt": "preview_negative_prompt",
        "steps": "preview_steps",
        "sampler_name": "preview_sampler_name",
        "cfg_scale": "preview_cfg_scale",
        "seed": "preview_seed",
        "width": "preview_width",
        "height": "preview_height",
    }
    out: dict[str, Any] = {}
    for key, value in preview.items():
        if value is None or key not in names:
            continue
        if key in ("steps", "seed", "width", "height"):
            value = int(value)
        elif key == "cfg_scale":
            value = float(value)
        elif key == "sampler_name" and value not in {spec.name for spec in SAMPLERS}:
            continue
        out[names[key]] = value
    return out


def _extension_train_tabs(app: App, txt2img: dict[str, Any]) -> None:
    """A1111's `on_ui_train_tabs(params)`: extensions add their own tabs next to ours."""
    registry = app.callbacks
    for entry in list(registry.entries["ui_train_tabs"]):
        try:
            entry.callback(UiTrainTabParams([txt2img[k] for k in PREVIEW_FIELDS if k in txt2img]))
        except Exception as exc:  # an extension's failing tab must not take the Train tab with it
            registry.report("ui_train_tabs", entry, exc)
            app.settings.report_extension_problem(
                f"on_ui_train_tabs failed ({type(exc).__name__}: {exc}); its tab is left out"
            )


def _embedding_names(app: App, refresh: bool = False) -> list[str]:
    if refresh:
        app.embeddings.refresh()
    return sorted(app.embeddings.embeddings)


def _hypernetwork_names(app: App, refresh: bool = False) -> list[str]:
    infos = app.hypernetworks.refresh() if refresh else app.hypernetworks.list()
    return sorted(info.name for info in infos)


def _error(exc: Exception) -> str:
    return f'<div class="sumi-error">{html.escape(str(exc))}</div>'
