"""The size sliders follow the checkpoint's trained size while they still show the previous model's size:
the demo starts at 128x128, a plain SD1 file brings back 512x512, and a size the user chose stays."""

from __future__ import annotations

import gradio as gr
import pytest
from safetensors.torch import load_file, save_file

from modules.sumi.frontends.gradio.native_size import follow_size
from modules.sumi.services.models.demo import DEMO_NAME


@pytest.fixture
def app(make_app, tmp_path, tiny_sd1_ckpt):
    app = make_app(tmp_path / "data", "--nowebui", loaded=True)
    folder = app.paths.ckpt_dirs[0]
    (folder / "plain.safetensors").write_bytes(tiny_sd1_ckpt[0].read_bytes())
    save_file(
        load_file(tiny_sd1_ckpt[0]), folder / "xl.safetensors", metadata={"modelspec.resolution": "1024x1024"}
    )
    app.checkpoints.refresh()
    return app


def test_the_page_opens_at_the_demo_models_size(app):
    assert follow_size(app, DEMO_NAME, None, 512, 512, 512, 512) == [128, 128, 128, 128, [128, 128]]


def test_picking_another_model_moves_sliders_that_still_show_the_old_size(app):
    assert follow_size(app, "plain.safetensors", [128, 128], 128, 128, 128, 128) == [512] * 4 + [[512, 512]]
    assert follow_size(app, "xl.safetensors", [512, 512], 512, 512, 512, 512) == [1024] * 4 + [[1024, 1024]]


def test_a_size_the_user_chose_stays(app):
    out = follow_size(app, "plain.safetensors", [128, 128], 256, 192, 128, 128)
    # txt2img's own size is not touched (not even echoed back: that could undo a newer edit); img2img's followed
    assert out == [gr.skip(), gr.skip(), 512, 512, [512, 512]]
    assert follow_size(app, "nothing-like-this", [128, 128], 128, 128, 128, 128)[:4] == [512] * 4
