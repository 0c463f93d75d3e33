"""Extensions that edit A1111's UNet block lists (`p.sd_model.model.diffusion_model.input_blocks`,
`output_blocks`) during a job, the way Kohya's Deep Shrink (sd-webui-kohya-hiresfix) does: from an
`on_cfg_denoiser` callback registered in `process`, put back in `postprocess`. What they put there runs,
a pass-through changes nothing, and the blocks put back give the plain picture again."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.app_support import local_client, post_txt2img
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/shrink.py": """
        import gradio as gr
        import torch

        from modules import script_callbacks, scripts, shared


        class Scaler(torch.nn.Module):
            def __init__(self, scale, block):
                super().__init__()
                self.scale = scale
                self.block = block

            def forward(self, x, *args):
                if self.scale != 1:
                    x = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic")
                return self.block(x, *args)


        class Script(scripts.Script):
            seen = []

            def title(self):
                return "Shrink"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Number(value=0, label="Mode")]

            def process(self, p, mode):
                if not mode:
                    script_callbacks.remove_current_script_callbacks()
                    return
                model = p.sd_model.model.diffusion_model
                assert model is shared.sd_model.model.diffusion_model
                down, up = (0.5, 2.0) if mode == 2 else (1, 1)

                def on_denoiser(params):
                    first = params.sampling_step < params.total_sampling_steps // 2
                    if first and not isinstance(model.input_blocks[1], Scaler):
                        model.input_blocks[1] = Scaler(down, model.input_blocks[1])
                        model.output_blocks[-2] = Scaler(up, model.output_blocks[-2])
                    elif not first and isinstance(model.input_blocks[1], Scaler):
                        model.input_blocks[1] = model.input_blocks[1].block
                        model.output_blocks[-2] = model.output_blocks[-2].block
                    Script.seen.append(type(model.input_blocks[1]).__name__)

                script_callbacks.on_cfg_denoiser(on_denoiser)

            def postprocess(self, p, processed, mode):
                model = p.sd_model.model.diffusion_model
                for blocks in (model.input_blocks, model.output_blocks):
                    for i, block in enumerate(blocks):
                        if isinstance(block, Scaler):
                            blocks[i] = block.block
    """,
}
BODY = {"prompt": "a red circle", "steps": 4, "width": 128, "height": 128, "seed": 5, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "shrink", EXTENSION)
    return make_module_app(data, "--api", "--nowebui")


@pytest.fixture(scope="module")
def client(app):
    import webui

    return local_client(webui.build_server(app))


def _job(client, mode: int) -> np.ndarray:
    body = post_txt2img(client, {**BODY, "alwayson_scripts": {"Shrink": {"args": [mode]}}})
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))), dtype=np.int16)


def _seen():
    from modules import scripts

    for script in scripts.scripts_txt2img.alwayson_scripts:
        if script.title() == "Shrink":
            return type(script).seen
    raise AssertionError("the Shrink script is not loaded")


def test_a_pass_through_wrapper_in_the_lists_leaves_the_picture_as_it_was(client):
    plain = _job(client, 0)
    _seen().clear()
    wrapped = _job(client, 1)
    assert _seen()[:2] == ["Scaler", "Scaler"] and _seen()[-1] == "LdmBlock"
    assert np.abs(wrapped - plain).max() <= 1


def test_deep_shrink_changes_the_picture_and_the_next_plain_job_draws_the_plain_one(client):
    plain = _job(client, 0)
    shrunk = _job(client, 2)
    assert np.abs(shrunk - plain).mean() > 1
    assert np.array_equal(_job(client, 0), plain)  # its callback removed, its blocks put back
