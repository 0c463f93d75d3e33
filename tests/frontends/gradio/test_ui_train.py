"""The Train tab's run display: the status line, the loss plot's rows, the files and errors shown; the
LoRA panel's values becoming settings."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
from PIL import Image

from modules.sumi.frontends.gradio.train_monitor import loss_frame, outcome_html, sample_gallery, status_text
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.run import LossPoint, Sample, TrainingRun


def _run(tmp_path: Path) -> TrainingRun:
    run = TrainingRun("train-1", "lora", "squares", 10)
    run.start()
    run.started = time.time() - 8
    for step in range(1, 5):
        run.add_loss(LossPoint(step, 1.0 / step, 1e-4))
    Image.new("RGB", (8, 8), "red").save(tmp_path / "s.png")
    run.add_sample(Sample(4, tmp_path / "s.png", "a red square"))
    run.add_file(tmp_path / "models" / "Lora" / "squares.safetensors")
    return run


def test_the_status_line_says_step_loss_and_time_left(tmp_path):
    text = status_text(_run(tmp_path).view())
    assert text.startswith("Training: lora 'squares', step 4/10, loss 0.25000, ETA ")


def test_the_loss_plot_gets_one_row_per_step(tmp_path):
    frame = loss_frame(_run(tmp_path).view())
    assert list(frame["step"]) == [1, 2, 3, 4] and list(frame["loss"]) == [1.0, 0.5, 1 / 3, 0.25]


def test_files_are_shown_relative_to_the_data_folder_and_errors_escaped(tmp_path):
    app = SimpleNamespace(paths=DataPaths.from_args(argparse.Namespace(data_dir=str(tmp_path)), tmp_path))
    run = _run(tmp_path)
    run.finish("failed", "bad <value>")
    shown = outcome_html(app, run.view())
    assert "models/Lora/squares.safetensors" in shown and str(tmp_path) not in shown
    assert 'class="sumi-error"' in shown and "bad &lt;value&gt;" in shown


def test_samples_are_read_into_the_gallery_with_their_step_and_prompt(tmp_path):
    [(image, caption)] = sample_gallery(_run(tmp_path).view())
    assert image.size == (8, 8) and caption == "step 4: a red square"


def test_panel_values_become_settings_by_their_field_types():
    from modules.sumi.frontends.gradio.train_panel_values import settings_from_panel
    from modules.sumi.services.training.lora_settings import LoraTrainingSettings

    names = ["output_name", "data_root", "steps", "alpha", "unet_lr", "preview_prompt", "flip"]
    values = (" my-lora ", " sets/a ", 12.0, 4.0, 0, None, True)
    settings = settings_from_panel(LoraTrainingSettings, names, values, stripped=("output_name", "data_root"))
    assert (settings.output_name, settings.data_root, settings.steps) == ("my-lora", "sets/a", 12)
    assert isinstance(settings.steps, int) and settings.alpha == 4.0 and settings.unet_lr is None
    assert settings.preview_prompt == "" and settings.flip is True


def test_the_lora_panels_debiased_estimation_checkbox_reaches_the_settings():
    from modules.sumi.frontends.gradio.train_lora_ui import create_lora_panel, settings_from_ui

    with gr.Blocks(), gr.Tabs():
        panel = create_lora_panel(SimpleNamespace())  # type: ignore[arg-type]
    fields = panel.controls["fields"]
    box = fields["debiased_estimation"]
    assert isinstance(box, gr.Checkbox) and box.elem_id == "train_lora_debiased_estimation"
    assert box.label == "Debiased estimation loss" and box.value is False
    names = list(fields)
    changes = {"output_name": "mine", "data_root": "set"}
    values = tuple(changes.get(n, fields[n].value) for n in names)
    assert settings_from_ui(names, values).debiased_estimation is False
    ticked = tuple(True if n == "debiased_estimation" else v for n, v in zip(names, values, strict=True))
    assert settings_from_ui(names, ticked).debiased_estimation is True
