"""The Refiner accordion of txt2img and img2img: A1111's element ids and defaults, the job it builds, ↙️
restoring it from an infotext, and a UI-built job that switches to the refiner."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from modules.sumi.frontends.gradio import img2img as i2i
from modules.sumi.frontends.gradio import refiner_ui
from modules.sumi.frontends.gradio import txt2img as t2i
from modules.sumi.frontends.gradio.paste import extra_values
from tests.fixtures.tiny_models import write_tiny_checkpoint

SKIP = gr.skip()


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("refiner_ui")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_tiny_checkpoint(folder / "base.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "fine.safetensors", "SD1", seed=2)
    (data / "config.json").write_text(json.dumps({"sd_model_checkpoint": "base.safetensors"}))
    return make_module_app(data, loaded=True)


def test_both_tabs_have_a1111s_refiner_controls(app):
    from modules.sumi.frontends.gradio import build_ui

    config = build_ui(app).get_config_file()
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c["props"].get("elem_id")}
    for tab in ("txt2img", "img2img"):
        assert props[f"{tab}_enable"]["label"] == "Refiner"
        assert props[f"{tab}_enable-checkbox"]["value"] is False
        checkpoint = props[f"{tab}_checkpoint"]
        assert checkpoint["value"] == "None"
        assert [c[0] for c in checkpoint["choices"]] == ["None", *app.checkpoints.titles()]
        assert [c[1] for c in checkpoint["choices"]] == ["None", *(i.name for i in app.checkpoints.list())]
        switch = props[f"{tab}_switch_at"]
        assert (switch["minimum"], switch["maximum"], switch["step"], switch["value"]) == (
            0.01,
            1.0,
            0.01,
            0.8,
        )
        assert f"{tab}_checkpoint_refresh" in props


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((True, "fine.safetensors", 0.6), ("fine.safetensors", 0.6)),
        ((False, "fine.safetensors", 0.6), (None, None)),
        ((True, "None", 0.6), (None, None)),
    ],
)
def test_the_controls_set_the_jobs_refiner_fields(values, expected):
    enabled, checkpoint, at = values
    p = t2i.build_processing(
        t2i.Txt2ImgValues(refiner_enabled=enabled, refiner_checkpoint=checkpoint, refiner_switch_at=at)
    )
    assert (p.refiner_checkpoint, p.refiner_switch_at) == expected
    from PIL import Image

    q = i2i.build_processing(
        i2i.Img2ImgValues(
            init_img=Image.new("RGB", (64, 64)),
            refiner_enabled=enabled,
            refiner_checkpoint=checkpoint,
            refiner_switch_at=at,
        )
    )
    assert (q.refiner_checkpoint, q.refiner_switch_at) == expected


def test_paste_restores_the_refiner_and_unticks_it_when_the_infotext_has_none(app):
    with gr.Blocks():
        c: dict = {}
        refiner_ui.create_refiner(app, c, lambda cls, *a, **k: cls(*a, **k))
    fields = refiner_ui.paste_fields(app, c)
    title = app.checkpoints.match("fine").title
    text = f"a fox\nSteps: 20, Sampler: Euler, Seed: 1, Refiner: {title}, Refiner switch at: 0.6"
    assert extra_values(text, fields, app.options) == [True, "fine.safetensors", 0.6]
    plain = "a fox\nSteps: 20, Sampler: Euler, Seed: 1"
    assert extra_values(plain, fields, app.options) == [False, SKIP, SKIP]
    gone = "a fox\nSteps: 20, Sampler: Euler, Seed: 1, Refiner: deleted [abcdef12], Refiner switch at: 0.7"
    assert extra_values(gone, fields, app.options) == [True, SKIP, 0.7]


def test_a_job_from_the_ui_switches_to_the_refiner(app):
    title = app.checkpoints.match("fine").title
    values = t2i.Txt2ImgValues(
        prompt="a red fox",
        steps=4,
        width=64,
        height=64,
        seed=3,
        sampler_name="Euler",
        refiner_enabled=True,
        refiner_checkpoint=title,
        refiner_switch_at=0.5,
    )
    processed = app.runner.txt2img(t2i.build_processing(values))
    short = app.checkpoints.match("fine").short_title  # "fine [hash]": hashed when it loaded
    assert f"Refiner: {short}, Refiner switch at: 0.5" in processed.infotexts[0]
    assert app.models.active.checkpoint.name == "base.safetensors"
