"""A1111 details scripts rely on, through the API: `Processed(p, images, seed, info)` from a script's
`run`, text boxes that default to "" when `script_args` is short, and failures that name the extension."""

from __future__ import annotations

import json

import pytest

from tests.app_support import post_txt2img
from tests.fixtures.files import write_files

EXT = "sd-webui-details-ext"
BODY = {"steps": 1, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler", "prompt": "a fox"}

SCRIPT = """
import gradio as gr

import modules.scripts as scripts
from modules.processing import Processed, process_images


class Tagger(scripts.Script):
    def title(self):
        return "Tagger"

    def ui(self, is_img2img):
        return [gr.Textbox(label="Tag"), gr.Checkbox(True, label="Shout"), gr.Textbox(lines=2, label="Note")]

    def run(self, p, tag, shout, note):
        p.prompt = p.prompt + tag.strip() + note.strip()  # A1111 hands "" for an empty text box
        p.batch_size = 2
        made = process_images(p)
        return Processed(p, made.images, p.seed, "Tagger: " + (tag.upper() if shout else tag) + "|" + note)


class Exploding(scripts.Script):
    def title(self):
        return "Exploding"

    def run(self, p):
        raise KeyError("wildcards.txt")


class Grumpy(scripts.Script):
    def title(self):
        return "Grumpy"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(False, label="Grumble")]

    def process(self, p, grumble):
        if grumble:
            raise RuntimeError("grumble")
"""


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("details")
    write_files(data / "extensions" / EXT, {"scripts/details.py": SCRIPT})
    return make_module_app(data, "--nowebui")


def test_short_script_args_fill_text_boxes_with_empty_text_and_the_rest_with_ui_defaults(client):
    body = post_txt2img(client, {**BODY, "script_name": "tagger", "script_args": []})
    info = json.loads(body["info"])
    assert info["infotexts"] == ["Tagger: |", "Tagger: |"]
    partial = post_txt2img(client, {**BODY, "script_name": "tagger", "script_args": ["red"]})
    assert json.loads(partial["info"])["infotexts"][0] == "Tagger: RED|"  # Shout's default True


def test_processed_built_by_a_script_gives_every_image_its_info(client):
    body = post_txt2img(client, {**BODY, "script_name": "tagger", "script_args": ["red", False, "n"]})
    info = json.loads(body["info"])
    assert len(body["images"]) == 2
    assert info["infotexts"] == ["Tagger: red|n", "Tagger: red|n"]
    assert info["prompt"] == "a foxredn" and info["seed"] == 3


def test_processed_constructor_matches_a1111(app):
    from modules.processing import Processed, StableDiffusionProcessingTxt2Img

    p = StableDiffusionProcessingTxt2Img(prompt=["first", "second"], negative_prompt="bad", steps=1)
    made = Processed(p, ["a", "b", "c"], [5, 6], "text", 9)
    assert (made.seed, made.subseed, made.info, made.infotexts) == (5, 9, "text", ["text"] * 3)
    assert (made.prompt, made.negative_prompt, made.index_of_first_image) == ("first", "bad", 0)
    assert Processed(p, [], 1, "nothing").infotexts == []  # A1111: one infotext per image
    explicit = Processed(p, ["a"], 1, "x", None, None, None, None, None, 0, ["own"], "comment")
    assert explicit.infotexts == ["own"] and explicit.comments == "comment"


def test_a_failing_run_is_reported_with_the_extension_name(client):
    body = post_txt2img(client, {**BODY, "script_name": "exploding"}, status=500)
    assert (
        f"Extension '{EXT}' (script 'Exploding') failed in run: KeyError: 'wildcards.txt'" in body["errors"]
    )
    assert "Sumi" not in body["errors"]


def test_a_failing_always_on_script_warning_names_the_extension(client):
    body = post_txt2img(client, {**BODY, "alwayson_scripts": {"Grumpy": {"args": [True]}}})
    warnings = json.loads(body["info"])["warnings"]
    assert any(
        w.startswith(f"Extension '{EXT}': Script 'Grumpy' failed in process (grumble)") for w in warnings
    )
    assert body["images"]


def test_ui_error_message_is_the_extension_named_message():
    from modules.sumi.frontends.gradio.results import error_message
    from modules.sumi.services.scripts.runner import ExtensionScriptError

    exc = ExtensionScriptError(f"Extension '{EXT}'", "Exploding", "run", KeyError("wildcards.txt"))
    assert (
        error_message(exc)
        == f"Extension '{EXT}' (script 'Exploding') failed in run: KeyError: 'wildcards.txt'"
    )


def test_an_empty_text_box_from_the_page_reaches_the_script_as_empty_text():
    from types import SimpleNamespace

    import gradio as gr

    import modules.scripts as scripts
    from modules.sumi.services.scripts.runner import ScriptClassData, ScriptRunner

    class Boxes(scripts.Script):
        def title(self):
            return "Boxes"

        def ui(self, is_img2img):
            return [gr.Textbox(label="Words"), gr.Number(label="Count"), gr.TextArea(label="More")]

    runner = ScriptRunner()
    runner.initialize_scripts([ScriptClassData(Boxes, "boxes.py", ".", None)])
    with gr.Blocks():
        runner.create_inputs()
    assert runner.default_args() == [0, "", None, ""]  # Gradio 3's Textbox default; Number stays None
    p = SimpleNamespace(script_args=(1, None, None, None))  # what Gradio 6's page sends for empty boxes
    runner.setup_scrips(p)
    assert p.script_args == [1, "", None, ""]
