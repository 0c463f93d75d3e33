"""The Train tab's ControlNet panel without a browser: its ids and defaults, the values it sends becoming
settings, a run from the Train button that lands in models/ControlNet and in the ControlNet units' model
dropdown at once, and bad values as a red message with nothing queued."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import controlnet_handlers
from modules.sumi.frontends.gradio.train_controlnet_ui import (
    FOLDER_CHOICE,
    create_controlnet_panel,
    preprocessor_choices,
    settings_from_ui,
    train_controlnet,
)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("train-cn-ui"), "--nowebui", loaded=True)
    folder = app.paths.data_dir / "shapes"
    folder.mkdir()
    for i in range(2):
        pixels = np.full((64, 64, 3), 20, np.uint8)
        pixels[8 + 16 * i : 40 + 16 * i, 12:44] = (40, 200, 90)
        Image.fromarray(pixels).save(folder / f"{i}-green block.png")
    return app


@pytest.fixture(scope="module")
def panel(app):
    with gr.Blocks():
        return create_controlnet_panel(app)


def values(panel, **changes) -> tuple[list[str], tuple]:
    """The panel's field names and their values as the page sends them, with `changes`."""
    fields = panel.controls["fields"]
    names = list(fields)
    return names, tuple(changes.get(name, fields[name].value) for name in names)


def test_the_panel_has_its_ids_and_the_training_preprocessors(app):
    from modules.sumi.frontends.gradio import build_ui

    config = build_ui(app).get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    for elem_id in (
        "train_controlnet_tab",
        "train_controlnet_output_name",
        "train_controlnet_data_root",
        "train_controlnet_conditioning_data_root",
        "train_controlnet_proportion_empty_prompts",
        "train_controlnet_debiased_estimation",
        "train_controlnet_preview_conditioning",
        "train_controlnet_train",
        "train_controlnet_interrupt",
    ):
        assert elem_id in props, elem_id
    dropdown = props["train_controlnet_preprocessor"]
    choices = [c[0] if isinstance(c, (list, tuple)) else c for c in dropdown["choices"]]
    assert dropdown["value"] == FOLDER_CHOICE and choices == preprocessor_choices()
    assert "canny" in choices and "depth_midas" not in choices and "none" not in choices
    assert props["train_controlnet_save_precision"]["value"] == "fp16"
    assert props["train_controlnet_debiased_estimation"]["value"] is False


def test_the_panel_values_become_settings(panel):
    defaults = settings_from_ui(*values(panel, output_name=" mine ", data_root=" shapes "))
    assert defaults.output_name == "mine" and defaults.data_root == "shapes"
    assert defaults.preprocessor == "" and defaults.min_snr_gamma is None and defaults.steps == 5000
    assert defaults.debiased_estimation is False
    changed = settings_from_ui(
        *values(
            panel,
            output_name="mine",
            preprocessor="canny",
            preprocessor_threshold_a=50,
            steps=3.0,
            min_snr_gamma=5,
            debiased_estimation=True,
            proportion_empty_prompts=0.5,
        )
    )
    assert changed.preprocessor == "canny" and changed.preprocessor_threshold_a == 50.0
    assert changed.steps == 3 and changed.min_snr_gamma == 5.0 and changed.proportion_empty_prompts == 0.5
    assert changed.debiased_estimation is True


def test_the_train_button_trains_and_the_model_is_offered_to_the_units_at_once(app, panel):
    assert not any(n.startswith("ui-canny [") for n in controlnet_handlers.model_choices(app))
    names, vals = values(
        panel,
        output_name="ui-canny",
        data_root="shapes",
        preprocessor="canny",
        steps=2,
        training_width=64,
        training_height=64,
        learn_rate="0.001",
    )
    *_, (status, outcome, frame, _gallery) = list(train_controlnet(app, names, *vals))
    assert status.startswith("Training finished: controlnet 'ui-canny', step 2/2"), status
    assert "models/ControlNet/ui-canny.safetensors" in outcome
    assert list(frame["step"]) == [1, 2]
    assert (app.paths.controlnet_dir / "ui-canny.safetensors").is_file()
    assert any(n.startswith("ui-canny [") for n in controlnet_handlers.model_choices(app))


def test_a_bad_value_is_a_red_message_and_nothing_is_queued(app, panel):
    runs = len(app.training.runs.runs)
    names, vals = values(panel, output_name="no-pairs", data_root="shapes")  # no conditioning folder
    [(status, outcome, *_)] = list(train_controlnet(app, names, *vals))
    assert status == "" and 'class="sumi-error"' in outcome and "conditioning" in outcome
    names, vals = values(panel, output_name="x", data_root="shapes", preprocessor="canny", batch_size=0)
    [(_, outcome, *_)] = list(train_controlnet(app, names, *vals))
    assert "batch_size" in outcome
    assert len(app.training.runs.runs) == runs
