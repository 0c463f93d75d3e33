"""The Train tab's Fine-tune / DreamBooth panel without a browser: a control for every setting (ids
prefixed `train_finetune_`), the panel's values turned into settings (0 = off), and a bad value shown in
red without anything being queued."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import gradio as gr
import pytest

from modules.sumi.frontends.gradio.train_finetune_ui import (
    create_finetune_panel,
    settings_from_ui,
    train_finetune,
)
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings


@pytest.fixture(scope="module")
def panel():
    with gr.Blocks(), gr.Tabs():
        return create_finetune_panel(SimpleNamespace())  # type: ignore[arg-type]


def _values(panel, **changes) -> tuple[list[str], tuple]:
    fields = panel.controls["fields"]
    names = list(fields)
    return names, tuple(changes.get(n, fields[n].value) for n in names)


def test_every_setting_has_a_control_with_the_panels_id_prefix(panel):
    fields = panel.controls["fields"]
    assert set(fields) == {f.name for f in dataclasses.fields(FinetuneTrainingSettings)}
    ids = [c.elem_id for c in [*fields.values(), panel.controls["train"], panel.controls["interrupt"]]]
    assert all(i.startswith("train_finetune_") for i in ids) and len(set(ids)) == len(ids)


def test_the_panels_values_become_settings_with_zero_meaning_off(panel):
    names, values = _values(
        panel,
        output_name=" my-dog ",
        data_root=" dogs ",
        instance_prompt="a photo of sks dog",
        class_data_root="dog-class",
        class_prompt="a photo of a dog",
        num_class_images=12.0,
        steps=40.0,
        unet_lr=0,
        train_text_encoder=True,
        text_encoder_lr=2e-6,
        min_snr_gamma=0,
        debiased_estimation=True,
        ema=True,
    )
    settings = settings_from_ui(names, values)
    assert (settings.output_name, settings.data_root, settings.class_data_root) == (
        "my-dog",
        "dogs",
        "dog-class",
    )
    assert settings.num_class_images == 12 and settings.steps == 40
    assert settings.unet_lr is None and settings.min_snr_gamma is None and settings.text_encoder_lr == 2e-6
    assert settings.prior_preservation and settings.ema and settings.ema_decay == 0.9999
    assert settings.debiased_estimation is True
    box = panel.controls["fields"]["debiased_estimation"]
    assert isinstance(box, gr.Checkbox) and box.label == "Debiased estimation loss" and box.value is False
    assert settings.learn_rate == "5e-6" and settings.save_precision == "fp16"


def test_a_bad_value_is_shown_in_red_and_nothing_is_queued(panel):
    submitted = []
    app = SimpleNamespace(finetune_training=SimpleNamespace(submit=submitted.append))
    names, values = _values(panel, output_name="tuned", data_root="dogs", class_prompt="a dog")
    [(text, outcome, *_)] = list(train_finetune(app, names, *values))  # type: ignore[arg-type]
    assert text == "" and 'class="sumi-error"' in outcome and "class_prompt" in outcome
    assert submitted == []
