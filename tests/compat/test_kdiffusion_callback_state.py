"""A1111's per-step callback of k-diffusion samplers, `KDiffusionSampler.callback_state(self, d)`, replaced
on the class the way sd-webui-vectorscope-cc and sd-webui-resharpen replace it when they load: it runs
once per step with k-diffusion's dict, after the step's model call and before its update, and what it
does to `d["denoised"]` (or `d["x"]`) in place is what the step goes on with."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.app_support import post_txt2img
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/state_hook.py": """
        import gradio as gr

        from modules import scripts
        from modules.sd_samplers_kdiffusion import KDiffusionSampler

        original = KDiffusionSampler.callback_state
        KDiffusionSampler.original_state = original
        KDiffusionSampler.seen = []
        KDiffusionSampler.shift = 0.0


        def hooked(self, d):
            KDiffusionSampler.seen.append(
                {"i": d["i"], "sigma": float(d["sigma"]), "keys": sorted(d), "sdxl": self.p.sd_model.is_sdxl}
            )
            if KDiffusionSampler.shift > 0:
                d["denoised"][:, 0] += KDiffusionSampler.shift  # vectorscope-cc's "denoised" mode
            elif KDiffusionSampler.shift < 0:
                d["x"][:, 0] -= KDiffusionSampler.shift  # its "x" mode
            return original(self, d)


        KDiffusionSampler.callback_state = hooked


        class Script(scripts.Script):
            def title(self):
                return "State hook"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return [gr.Number(value=0, label="Shift")]

            def process_batch(self, p, shift, **kwargs):
                KDiffusionSampler.shift = float(shift or 0)
                KDiffusionSampler.seen.clear()
    """,
}
BODY = {"prompt": "a red circle", "steps": 3, "width": 64, "height": 64, "seed": 3, "cfg_scale": 5}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "state-hook", EXTENSION)
    yield make_module_app(data, "--api", "--nowebui")
    from modules.sd_samplers_kdiffusion import KDiffusionSampler

    KDiffusionSampler.callback_state = KDiffusionSampler.original_state  # as its on_script_unloaded would


def _pixels(body: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))), dtype=np.int16)


def _job(client, sampler: str, shift: float = 0.0) -> np.ndarray:
    body = {**BODY, "sampler_name": sampler, "alwayson_scripts": {"State hook": {"args": [shift]}}}
    return _pixels(post_txt2img(client, body, 200))


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "Heun"])
def test_the_callback_runs_once_per_step_with_k_diffusions_dict(client, app, sampler):
    from modules.sd_samplers_kdiffusion import KDiffusionSampler

    _job(client, sampler)
    seen = KDiffusionSampler.seen
    assert [s["i"] for s in seen] == [0, 1, 2]  # once per step, also for Heun's two model calls a step
    assert all(s["keys"] == ["denoised", "i", "sigma", "sigma_hat", "x"] and s["sdxl"] is False for s in seen)
    sigmas = [s["sigma"] for s in seen]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] > 0


def test_what_the_callback_does_to_the_tensors_is_what_the_step_goes_on_with(client, app):
    plain, shifted = _job(client, "Euler a"), _job(client, "Euler a", shift=1.5)
    assert np.abs(plain - shifted).max() > 8


def test_euler_calls_it_after_the_derivative_as_k_diffusion_does(client, app):
    """Euler, Heun, DPM2 and LMS call k-diffusion's callback after the step's derivative: an edit of
    `denoised` then changes nothing, an edit of `x` moves the step (Euler a calls it before)."""
    plain = _job(client, "Euler")
    assert np.abs(_job(client, "Euler", shift=1.5) - plain).max() <= 1
    assert np.abs(_job(client, "Euler", shift=-1.5) - plain).max() > 8


def test_a_pass_through_callback_leaves_the_picture_as_sumis_own_sampler_makes_it(client, app):
    from modules.sd_samplers_kdiffusion import KDiffusionSampler

    hooked = _job(client, "Euler a")
    replaced = KDiffusionSampler.callback_state
    KDiffusionSampler.callback_state = KDiffusionSampler.original_state  # Sumi's samplers as they are
    try:
        plain = _pixels(post_txt2img(client, {**BODY, "sampler_name": "Euler a"}, 200))
    finally:
        KDiffusionSampler.callback_state = replaced
    assert np.abs(hooked - plain).max() <= 2


def test_timestep_samplers_do_not_call_it_as_in_a1111(client, app):
    from modules.sd_samplers_kdiffusion import KDiffusionSampler

    _job(client, "DDIM")
    assert KDiffusionSampler.seen == []
