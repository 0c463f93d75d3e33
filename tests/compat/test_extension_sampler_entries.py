"""A sampler an extension registers for a batch, the way sd-dynamic-thresholding ("CFG Scale Fix") does it:
at import it takes `CFGDenoiserKDiffusion` from `modules.sd_samplers_kdiffusion` and subclasses
`sd_samplers_compvis.VanillaStableDiffusionSampler`; in `process_batch` it puts "<sampler>_<id>" in
`sd_samplers.all_samplers_map`, whose constructor wraps the user's sampler and gives it a denoiser with its
own `combine_denoised`, runs the batch under that name and names the real sampler in the infotext; in
`postprocess_batch` it takes the entry out. The batch must run the user's sampler with that combination."""

from __future__ import annotations

import base64
import io
import json
import logging

import numpy as np
import pytest
from PIL import Image

from tests.app_support import post_txt2img
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/cfg_fix.py": """
        import gradio as gr

        from modules import scripts, sd_samplers, sd_samplers_common, sd_samplers_compvis
        from modules.sd_samplers_kdiffusion import CFGDenoiserKDiffusion


        class Vanilla(sd_samplers_compvis.VanillaStableDiffusionSampler):  # made at import, as dynthres
            pass


        class OtherScale(CFGDenoiserKDiffusion):
            def __init__(self, sampler, scale):
                super().__init__(sampler)
                self.scale = scale

            def combine_denoised(self, x_out, conds_list, uncond, cond_scale):
                return super().combine_denoised(x_out, conds_list, uncond, self.scale)


        class Script(scripts.Script):
            last_id = 0

            def title(self):
                return "CFG fix"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Number(value=0, label="Guidance")]

            def process_batch(self, p, scale, **kwargs):
                if not scale:
                    return
                original = p.sampler_name
                p.extra_generation_params["Sampler"] = original
                p.extra_generation_params["CFG fix"] = scale
                Script.last_id += 1
                name = f"{original}_cfgfix{Script.last_id}"
                sampler = sd_samplers.all_samplers_map[original]

                def constructor(model):
                    result = sampler.constructor(model)
                    result.model_wrap_cfg = OtherScale(result, scale)
                    return result

                entry = sd_samplers_common.SamplerData(name, constructor, sampler.aliases, sampler.options)
                sd_samplers.all_samplers_map[name] = entry
                p.cfg_fix_original, p.cfg_fix_name, p.sampler_name = original, name, name
                if p.sampler is not None:
                    p.sampler = sd_samplers.create_sampler(p.sampler_name, p.sd_model)

            def postprocess_batch(self, p, scale, **kwargs):
                if not scale or not hasattr(p, "cfg_fix_name"):
                    return
                p.sampler_name = p.cfg_fix_original
                del sd_samplers.all_samplers_map[p.cfg_fix_name]
    """,
}
BODY = {"prompt": "a red circle", "negative_prompt": "blue", "steps": 3, "width": 64, "height": 64, "seed": 9}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "cfg-fix", EXTENSION)
    return make_module_app(data, "--api", "--nowebui")


def _pixels(body: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))), dtype=np.int16)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M"])
def test_a_batch_runs_the_users_sampler_with_the_extensions_combination(client, app, sampler):
    from modules import sd_samplers

    fixed = post_txt2img(
        client,
        {**BODY, "sampler_name": sampler, "cfg_scale": 7, "alwayson_scripts": {"CFG fix": {"args": [3]}}},
        200,
    )
    same_as = post_txt2img(client, {**BODY, "sampler_name": sampler, "cfg_scale": 3}, 200)
    unfixed = post_txt2img(client, {**BODY, "sampler_name": sampler, "cfg_scale": 7}, 200)
    assert np.abs(_pixels(fixed) - _pixels(same_as)).max() <= 1  # its guidance, the user's sampler
    assert np.abs(_pixels(fixed) - _pixels(unfixed)).max() > 8
    infotext = json.loads(fixed["info"])["infotexts"][0]
    assert f"Sampler: {sampler}," in infotext and "CFG fix: 3" in infotext and "CFG scale: 7" in infotext
    assert not [name for name in sd_samplers.all_samplers_map if "_cfgfix" in name]  # taken out again


def test_a1111s_sampler_internals_sumi_lacks_are_named_when_asked_for(app, caplog):
    from modules import sd_samplers_compvis, sd_samplers_kdiffusion

    with caplog.at_level(logging.ERROR), pytest.raises(ImportError):
        from modules.sd_samplers_kdiffusion import k_diffusion_samplers_map  # noqa: F401
    assert "k_diffusion_samplers_map is A1111's k-diffusion sampler code" in caplog.text
    assert not hasattr(sd_samplers_kdiffusion, "__wrapped__")  # dunder probes stay quiet errors
    with pytest.raises(NotImplementedError, match="run in Sumi's own loop"):
        sd_samplers_compvis.VanillaStableDiffusionSampler(None, None)
