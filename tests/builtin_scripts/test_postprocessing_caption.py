"""A1111's Caption Extras script: DeepDanbooru tags and/or the BLIP caption written as a .txt file next
to each saved picture (copies and tiles too), honouring "Action for existing captions"; and the A1111
facades extensions call (`deepbooru.model`, `shared.interrogator`)."""

from __future__ import annotations

import importlib

import gradio as gr
import pytest
from PIL import Image

from modules import deepbooru, shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.captioning.files import CaptionModelMissing
from modules.sumi.services.postprocessing.service import DIRECTORY, ExtrasRequest
from tests.fixtures.tiny_captioners import write_blip, write_deepdanbooru

TAGS = ["red_hair", "smile", "rating:safe", "blurry"]
caption_script = importlib.import_module("modules.sumi.builtin_scripts.postprocessing_caption")


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("caption") / "data", "--nowebui")
    models = app.paths.models_dir
    write_deepdanbooru(
        models / "torch_deepdanbooru" / "model-resnet_custom_v3.pt", TAGS, logits=[3, 2, 5, -4]
    )
    write_blip(models / "BLIP" / "blip-base", word="fox")
    app.options.set("interrogate_clip_min_length", 1)
    app.options.set("interrogate_clip_max_length", 3)
    return app


def picture(width: int = 40, height: int = 30) -> Image.Image:
    return Image.new("RGB", (width, height), (30, 60, 200))


def args(app, **scripts: dict) -> list:
    upscale = {"upscaler_1_name": "None", "upscale_mode": 1, "upscale_to_width": 30, "upscale_to_height": 30}
    return app.scripts.postproc.create_args_for_run({"Upscale": upscale, **scripts}, context=gr.Blocks)


def test_the_script_declares_a1111s_name_order_and_controls(app):
    script = caption_script.ScriptPostprocessingCeption()
    with gr.Blocks():
        controls = script.ui()
    assert (script.name, script.order) == ("Caption", 4000)
    assert list(controls) == ["enable", "option"]
    assert controls["enable"].value is False and controls["option"].value == ["Deepbooru"]
    assert [c for c, _ in controls["option"].choices] == ["Deepbooru", "BLIP"]
    names = [s.name for s in app.scripts.postproc.scripts_in_preferred_order()]
    assert names.index("Auto-sized crop") < names.index("Caption") < names.index("Create flipped copies")


def test_a_folder_becomes_captioned_training_pictures(app):
    raw, out = app.paths.data_dir / "raw", app.paths.data_dir / "captioned"
    raw.mkdir()
    picture().save(raw / "cat.png")
    picture(30, 90).save(raw / "tall.png")
    request = ExtrasRequest(
        mode=DIRECTORY,
        input_dir="raw",
        output_dir="captioned",
        args=args(
            app,
            Caption={"enable": True, "option": ["Deepbooru", "BLIP"]},
            **{"Create flipped copies": {"enable": True}, "Split oversized images": {"enable": True}},
        ),
    )
    app.extras.run(request)
    texts = {p.name: p.read_text() for p in sorted(out.glob("*.txt"))}
    pictures = sorted(p.stem for p in out.glob("*.png"))
    assert sorted(p.removesuffix(".txt") for p in texts) == pictures  # every picture has its caption
    # cat and its mirror; tall (three times the target) in 4 tiles, and its mirror in 4 more
    assert "cat" in pictures and "cat-1" in pictures and len(pictures) == 2 + 2 * 4
    assert set(texts.values()) == {"red hair, smile, fox fox"}


def test_an_existing_caption_is_kept_prepended_or_appended_by_the_setting(app):
    out = app.paths.data_dir / "again"
    (app.paths.data_dir / "one").mkdir()
    picture().save(app.paths.data_dir / "one" / "pic.png")
    request = ExtrasRequest(
        mode=DIRECTORY, input_dir="one", output_dir="again", args=args(app, Caption={"enable": True})
    )
    results = {}
    for action in ("Ignore", "Keep", "Prepend", "Append"):
        out.mkdir(exist_ok=True)
        (out / "pic.txt").write_text("mine")
        app.options.set("postprocessing_existing_caption_action", action)
        app.extras.run(request)
        results[action] = (out / "pic.txt").read_text()
    app.options.set("postprocessing_existing_caption_action", "Ignore")
    assert results == {
        "Ignore": "red hair, smile",
        "Keep": "mine",
        "Prepend": "mine red hair, smile",
        "Append": "red hair, smile mine",
    }


def test_a_bad_option_or_a_missing_model_fails_the_step_clearly(app):
    with pytest.raises(InvalidRequestError, match="WD14"):
        app.extras.run(
            ExtrasRequest(image=picture(), args=args(app, Caption={"enable": True, "option": ["WD14"]}))
        )
    blip = app.paths.models_dir / "BLIP"
    blip.rename(blip.with_name("BLIP-away"))
    try:
        with pytest.raises(CaptionModelMissing, match="BLIP"):
            app.extras.run(
                ExtrasRequest(image=picture(), args=args(app, Caption={"enable": True, "option": ["BLIP"]}))
            )
    finally:
        blip.with_name("BLIP-away").rename(blip)


def test_a1111s_facades_caption_with_the_same_models(app):
    assert deepbooru.model.tag(picture()) == "red hair, smile"
    app.options.set("interrogate_return_ranks", True)
    try:
        assert deepbooru.model.tag_multi(picture()) == "(red hair:0.953), (smile:0.881)"
        assert deepbooru.model.tag_multi(picture(), force_disable_ranks=True) == "red hair, smile"
    finally:
        app.options.set("interrogate_return_ranks", False)
    deepbooru.model.start()
    deepbooru.model.stop()
    assert shared.interrogator.interrogate(picture()) == "fox fox"
    assert shared.interrogator.generate_caption(picture()) == "fox fox"
    assert shared.interrogator and deepbooru.model  # available now (extensions test truthiness)
