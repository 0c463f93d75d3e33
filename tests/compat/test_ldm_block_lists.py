"""Extensions that edit A1111's UNet block lists (`p.sd_model.model.diffusion_model.input_blocks`,
`output_blocks`) during a job, the way Kohya's Deep Shrink (sd-webui-kohya-hiresfix) does: from an
`on_cfg_denoiser` callback registered in `process`, put back in `postprocess`. What they put there runs,
a pass-through changes nothing, and the blocks put back give the plain picture again. Also the
cross-attention layers by A1111's name (`CrossAttention`, LDM's forward), as Regional Prompter hooks them."""

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
EXTENSION["scripts/attention_hook.py"] = """
        import gradio as gr
        import torch

        from modules import scripts


        class Script(scripts.Script):
            hooked = []

            def title(self):
                return "Attention hook"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Number(value=0, label="Gain")]

            def process(self, p, gain):
                if not gain:
                    return
                root = p.sd_model.model.diffusion_model
                for name, module in root.named_modules():  # Regional Prompter's walk
                    if "attn2" in name and module.__class__.__name__ == "CrossAttention":
                        module.forward = self.forward_of(module, float(gain))
                        Script.hooked.append(name)

            @staticmethod
            def forward_of(module, gain):
                def forward(x, context=None, mask=None, additional_tokens=None):
                    h = module.heads
                    q, k, v = module.to_q(x), module.to_k(context) * gain, module.to_v(context)
                    b, n, _ = q.shape
                    q, k, v = (t.reshape(t.shape[0], t.shape[1], h, -1).transpose(1, 2) for t in (q, k, v))
                    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
                    return module.to_out(out.transpose(1, 2).reshape(b, n, -1))

                return forward

            def postprocess(self, p, processed, gain):
                for module in p.sd_model.model.diffusion_model.modules():
                    if module.__class__.__name__ == "CrossAttention" and "forward" in vars(module):
                        del module.forward
"""
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


def _job(client, mode: int, gain: float = 0) -> np.ndarray:
    scripts = {"Shrink": {"args": [mode]}, "Attention hook": {"args": [gain]}}
    body = post_txt2img(client, {**BODY, "alwayson_scripts": scripts})
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))), dtype=np.int16)


def _script(title: str):
    from modules import scripts

    for script in scripts.scripts_txt2img.alwayson_scripts:
        if script.title() == title:
            return type(script)
    raise AssertionError(f"the {title} script is not loaded")


def _seen():
    return _script("Shrink").seen


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


def test_cross_attention_layers_hooked_by_name_run_the_extension_s_ldm_style_forward(client):
    """Regional Prompter's way: `module.forward = f(x, context, mask)` on every `attn2` layer whose class
    is named `CrossAttention`; its own attention at gain 1 is the layer's, a gain changes the picture."""
    plain = _job(client, 0)
    same = _job(client, 0, gain=1.0)
    assert _script("Attention hook").hooked  # it found the layers by A1111's name
    assert np.abs(same - plain).max() <= 2
    sharper = _job(client, 0, gain=4.0)
    assert np.abs(sharper - plain).mean() > 1
    assert np.array_equal(_job(client, 0), plain)  # its forwards deleted: the layers' own again
