"""The Train tab's A1111 Train panel without a browser: Sumi's "Debiased estimation loss" checkbox (off by
default) is one of the Train Embedding button's inputs, and a run started from that button with it ticked
trains with it (the run's settings file, A1111's `settings-*.json`, records it)."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.sumi.frontends.gradio.train_ui import create_train_tab


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("train-a1111-ui"), "--nowebui", loaded=True)
    folder = app.paths.data_dir / "tiles"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 64, 3), 60 + 100 * i, np.uint8)).save(folder / f"{i}-grey tile.png")
    return app


def test_the_debiased_estimation_checkbox_reaches_the_runs_settings(app):
    with gr.Blocks() as page, gr.Tabs(), gr.Tab("Train"):
        create_train_tab(app, {})
    blocks = {b.elem_id: b for b in page.blocks.values() if getattr(b, "elem_id", None)}
    box = blocks["train_debiased_estimation"]
    assert isinstance(box, gr.Checkbox) and box.label == "Debiased estimation loss" and box.value is False
    button = blocks["train_train_embedding"]
    train = next(f for f in page.fns.values() if (button._id, "click") in f.targets)
    assert box in train.inputs

    app.a1111_training.create_embedding("ui-emb", 1, init_text="tile")
    changes = {
        "train_embedding": "ui-emb",
        "train_dataset_directory": "tiles",
        "train_template_file": "subject_filewords.txt",
        "train_training_width": 64,
        "train_training_height": 64,
        "train_steps": 1,
        "train_create_image_every": 0,
        "train_save_embedding_every": 0,
        "train_debiased_estimation": True,
    }
    values = [changes.get(str(c.elem_id), getattr(c, "value", None)) for c in train.inputs]
    assert train.fn is not None
    *_, (status, outcome, *_) = list(train.fn(*values))
    assert status.startswith("Training finished"), (status, outcome)
    [log] = (app.paths.data_dir / "textual_inversion").glob("*/ui-emb/settings-*.json")
    recorded = json.loads(log.read_text(encoding="utf-8"))
    assert recorded["debiased_estimation"] is True and recorded["embedding_name"] == "ui-emb"
