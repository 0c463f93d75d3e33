"""A1111-style scripts: loading from an extension folder, the always-on hooks, selectable scripts, A1111's
script_args layout over the API, and a broken script that does not stop the app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.files import write_files

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 4, "sampler_name": "Euler", "prompt": "a fox"}

SCRIPT = """
import gradio as gr

import modules.scripts as scripts
from modules.processing import process_images
from scripts.suffix_default import SUFFIX  # an extension importing its own module, as A1111 allows

LOADED_FROM = scripts.basedir()
PACKAGE = __package__  # A1111 names the module "test_script.py": its package is "test_script"


class PromptSuffix(scripts.Script):
    def title(self):
        return "Prompt suffix"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Row():  # layouts need a page: the API-only server gives them one
            enabled = gr.Checkbox(False, label="Enabled")
            suffix = gr.Textbox(SUFFIX, label="Suffix")
        return [enabled, suffix]

    def process(self, p, enabled, suffix):
        if enabled:
            p.all_prompts = [prompt + suffix for prompt in p.all_prompts]
            p.extra_generation_params["Suffix"] = suffix.strip(", ")
            p.extra_generation_params["Model seen"] = p.sd_model.sd_model_hash  # A1111's view of the model

    def postprocess_image(self, p, pp, enabled, suffix):
        if enabled:
            pp.image.info["suffix-seen"] = "yes"


class StepsOverride(scripts.Script):
    def title(self):
        return "Steps override"

    def ui(self, is_img2img):
        return [gr.Slider(1, 5, value=2, step=1, label="Steps")]

    def run(self, p, steps):
        p.steps = int(steps)
        return process_images(p)


class Broken(scripts.Script):
    def title(self):
        return "Broken"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        raise RuntimeError("boom from an extension")
"""


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts")
    app = make_module_app(root / "data", "--nowebui")
    extension = write_files(
        root / "sd-webui-test-ext",
        {
            "scripts/suffix_default.py": 'SUFFIX = ", in the rain"\n',
            "scripts/test_script.py": SCRIPT,
            "scripts/zz_syntax_error.py": "def broken(:\n",
        },
    )
    files = sorted((extension / "scripts").glob("*.py"))
    app.scripts.load([(path, extension) for path in files])
    return app


def _post(client, status: int = 200, **body) -> dict:
    return post_txt2img(client, {**BODY, **body}, status)


def _pixels(body: dict) -> np.ndarray:
    return decode_pixels(body["images"][0])


def test_scripts_and_their_args_are_listed(client):
    names = client.get("/sdapi/v1/scripts").json()["txt2img"]
    assert {"prompt suffix", "steps override", "broken"} <= set(names)
    info = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json()}
    assert info["prompt suffix"]["is_alwayson"] is True
    assert [a["label"] for a in info["prompt suffix"]["args"]] == ["Enabled", "Suffix"]
    assert info["prompt suffix"]["args"][1]["value"] == ", in the rain"
    assert info["steps override"]["args"][0]["maximum"] == 5


def test_an_always_on_script_rewrites_the_prompts_through_alwayson_scripts(client):
    plain_with_suffix = _post(client, prompt="a fox, at night")
    body = _post(client, alwayson_scripts={"Prompt suffix": {"args": [True, ", at night"]}})
    info = json.loads(body["info"])
    assert info["all_prompts"] == ["a fox, at night"]
    assert "Suffix: at night" in info["infotexts"][0]
    assert f"Model seen: {info['sd_model_hash']}" in info["infotexts"][0]
    assert np.array_equal(_pixels(body), _pixels(plain_with_suffix))


def test_a_selectable_script_runs_the_job_with_its_args(client):
    body = _post(client, script_name="steps override", script_args=[3])
    assert json.loads(body["info"])["steps"] == 3
    default = _post(client, script_name="Steps override")
    assert json.loads(default["info"])["steps"] == 2  # the slider's default


def test_unknown_scripts_are_a_clear_4xx(client):
    assert "Script not found" in _post(client, status=400, script_name="nope")["detail"]
    body = _post(client, status=400, alwayson_scripts={"no such script": {"args": []}})
    assert "always on script no such script not found" in body["detail"]


def test_a_failing_script_is_named_skipped_and_the_job_still_finishes(client, app):
    body = _post(client)
    info = json.loads(body["info"])
    assert any("Script 'Broken' failed in process" in w and "boom" in w for w in info["warnings"])
    assert body["images"]
    assert any(
        e.where == "process" and "boom from an extension" in e.message for e in app.scripts.errors.items
    )


def test_a_script_module_s_package_is_its_file_stem_as_in_a1111(app):
    (module,) = {d.module for d in app.scripts.scripts_data if d.path.endswith("test_script.py")}
    assert module.PACKAGE == "test_script"  # supermerger registers its tab only when this holds


def test_a_script_file_that_does_not_import_is_reported_and_the_others_load(app):
    errors = [e for e in app.scripts.errors.items if e.where == "import"]
    assert any(e.script.endswith("zz_syntax_error.py") and "SyntaxError" in e.traceback for e in errors)
    module = next(d.module for d in app.scripts.scripts_data if "sd-webui-test-ext" in d.path)
    assert module.LOADED_FROM.endswith("sd-webui-test-ext")


def test_cfg_callbacks_see_every_model_call_with_its_noise_level(client, app):
    from modules import script_callbacks

    seen, after = [], []
    script_callbacks.on_cfg_denoiser(
        lambda params: seen.append((params.sampling_step, float(params.sigma[0])))
    )
    script_callbacks.on_cfg_after_cfg(lambda params: after.append(params.x.shape))
    try:
        _post(client, steps=3)
    finally:
        app.callbacks.remove_function(app.callbacks.entries["cfg_denoiser"][-1].callback)
        app.callbacks.remove_function(app.callbacks.entries["cfg_after_cfg"][-1].callback)
    assert [step for step, _ in seen] == [0, 1, 2] and len(after) == 3
    sigmas = [sigma for _, sigma in seen]
    assert abs(sigmas[0] - 14.6146) < 1e-3 and sigmas == sorted(sigmas, reverse=True)
