"""The Tiling checkbox of the txt2img and img2img tabs: its element ids and default (the `tiling`
setting), the job it builds, Generate on a real App (infotext `Tiling: True`), and ↙️ paste."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import img2img as ui_img2img
from modules.sumi.frontends.gradio import paste
from modules.sumi.frontends.gradio import txt2img as ui
from tests.frontends.gradio.fakes import as_dict

INFOTEXT = "a wall\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 4, Size: 64x64, Tiling: True"


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("tiling-ui"), loaded=True)


def test_the_checkbox_sets_the_jobs_tiling_on_both_tabs():
    assert ui.build_processing(ui.Txt2ImgValues(tiling=True)).tiling is True
    assert ui.build_processing(ui.Txt2ImgValues()).tiling is False
    v = ui_img2img.Img2ImgValues(init_img=Image.new("RGB", (64, 64)), width=64, height=64, tiling=True)
    assert ui_img2img.build_processing(v).tiling is True


def test_paste_ticks_tiling_for_tiling_true_and_unticks_it_otherwise(app):
    ticked = paste.infotext_values(INFOTEXT, None, app.options)
    assert ticked is not None and ticked.values["tiling"] is True
    assert "Tiling" not in ticked.settings  # the checkbox takes it, not the settings note
    plain = paste.infotext_values(INFOTEXT.replace(", Tiling: True", ""), None, app.options)
    assert plain is not None and plain.values["tiling"] is False
    pasted = paste.paste(INFOTEXT, app.paths.params_file, None, None, paste.IMG2IMG_FIELDS)
    out = dict(zip((*paste.IMG2IMG_FIELDS, "note"), pasted, strict=True))
    assert out["tiling"] is True


def test_the_tabs_have_a1111s_tiling_ids_with_the_setting_as_default(app):
    with gr.Blocks():
        with gr.Tab("txt2img"):
            t2i = ui.create_txt2img_tab(app)
        with gr.Tab("img2img"):
            i2i = ui_img2img.create_img2img_tab(app)
    for tab, tabname in ((t2i, "txt2img"), (i2i, "img2img")):
        box = tab.controls["tiling"]
        assert isinstance(box, gr.Checkbox) and box.elem_id == f"{tabname}_tiling" and box.label == "Tiling"
        assert "tiling" in ui.INPUT_NAMES and "tiling" in ui_img2img.INPUT_NAMES
    app.options.set("tiling", True)
    try:
        load = t2i.controls["tiling"].load_event_to_attach  # Gradio calls it on each page load
        assert load is not None and load[0]() is True
    finally:
        app.options.set("tiling", False)


def test_generate_with_tiling_writes_it_into_the_infotext(app):
    v = ui.Txt2ImgValues(
        prompt="a wall", steps=2.0, width=64.0, height=64.0, sampler_name="Euler", tiling=True
    )
    last = [as_dict(out) for out in ui.generate(app, *(getattr(v, n) for n in ui.INPUT_NAMES))][-1]
    assert last["error"] == "", last["error"]
    assert "Tiling: True" in last["info_state"]["infotexts"][0]
    v2 = replace(
        ui_img2img.Img2ImgValues(init_img=Image.new("RGB", (64, 64)), steps=2, width=64, height=64),
        tiling=True,
    )
    last = [
        as_dict(out) for out in ui_img2img.generate(app, *(getattr(v2, n) for n in ui_img2img.INPUT_NAMES))
    ][-1]
    assert last["error"] == "", last["error"]
    assert "Tiling: True" in last["info_state"]["infotexts"][0]
