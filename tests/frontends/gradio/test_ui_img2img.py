"""The img2img tab without a browser: canvases to init image and mask, the job it builds, Generate on
a real App with the tiny demo model, send-to, and the results panel's 💾 / 🗜️."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.sumi.frontends.gradio import img2img as ui
from modules.sumi.frontends.gradio import output_panel, paste
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from tests.frontends.gradio.fakes import as_dict


def red(size=(64, 64)) -> Image.Image:
    return Image.new("RGB", size, (200, 30, 30))


def editor(background: Image.Image, box: tuple[int, int, int, int] | None, color=(255, 255, 255)) -> dict:
    """An ImageEditor value as Gradio hands it over: background, one layer of strokes, composite."""
    layer = Image.new("RGBA", background.size, (0, 0, 0, 0))
    composite = background.convert("RGBA")
    if box is not None:
        layer.paste((*color, 255), box)
        composite = Image.alpha_composite(composite, layer)
    return {"background": background.convert("RGBA"), "layers": [layer], "composite": composite}


def values(**changes) -> ui.Img2ImgValues:
    return replace(ui.Img2ImgValues(init_img=red(), steps=2, width=64, height=64), **changes)


# -- canvases -> init image and mask ----------------------------------------------------------------
def test_img2img_mode_sends_the_image_and_no_mask():
    p = ui.build_processing(values())
    assert isinstance(p, StableDiffusionProcessingImg2Img)
    assert p.init_images[0].size == (64, 64) and p.image_mask is None
    assert (p.width, p.height, p.steps, p.denoising_strength) == (64, 64, 2, 0.75)


def test_inpaint_mode_turns_the_painted_strokes_into_the_mask():
    v = values(mode=ui.MODE_INPAINT, init_img_with_mask=editor(red(), (10, 20, 30, 40)), inpainting_fill=2)
    p = ui.build_processing(v)
    alpha = np.asarray(p.image_mask.split()[-1])
    assert alpha[25, 15] == 255 and alpha[5, 5] == 0 and alpha[50, 50] == 0
    assert p.init_images[0].getpixel((15, 25))[:3] == (200, 30, 30)  # the canvas's own image, not the strokes
    assert p.inpainting_fill == 2


def test_inpaint_without_strokes_says_to_paint_first():
    with pytest.raises(ValueError, match="paint over"):
        ui.build_processing(values(mode=ui.MODE_INPAINT, init_img_with_mask=editor(red(), None)))


def test_inpaint_sketch_uses_the_strokes_as_content_and_mask():
    v = values(
        mode=ui.MODE_INPAINT_SKETCH,
        inpaint_color_sketch=editor(red(), (0, 0, 32, 64), color=(0, 0, 255)),
        mask_blur=0,
        mask_alpha=50,
    )
    p = ui.build_processing(v)
    # the strokes blended into the image through the half-transparent mask
    assert p.init_images[0].getpixel((10, 10)) == ((0 + 200) // 2, (0 + 30) // 2, (255 + 30) // 2)
    assert p.init_images[0].getpixel((50, 10)) == (200, 30, 30)
    mask = np.asarray(p.image_mask)
    assert mask[10, 10] in (127, 128) and mask[10, 50] == 0  # transparency 50% halves the mask


def test_sketch_mode_sends_the_drawing():
    p = ui.build_processing(
        values(mode=ui.MODE_SKETCH, sketch=editor(red(), (0, 0, 8, 8), color=(0, 255, 0)))
    )
    assert p.init_images[0].getpixel((2, 2))[:3] == (0, 255, 0) and p.image_mask is None


def test_inpaint_upload_needs_a_mask_and_sends_it():
    with pytest.raises(ValueError, match="mask"):
        ui.build_processing(values(mode=ui.MODE_INPAINT_UPLOAD, init_img_inpaint=red()))
    mask = Image.new("L", (64, 64), 255)
    p = ui.build_processing(
        values(mode=ui.MODE_INPAINT_UPLOAD, init_img_inpaint=red(), init_mask_inpaint=mask)
    )
    assert p.image_mask is mask


def test_no_image_is_a_message():
    with pytest.raises(ValueError, match="choose an image"):
        ui.build_processing(values(init_img=None))


def test_resize_by_scales_the_image_size_to_multiples_of_8():
    p = ui.build_processing(values(init_img=red((100, 60)), scale_tab=1, scale_by=1.5))
    assert (p.width, p.height) == (144, 88)


def test_radio_indexes_become_the_job_fields():
    v = values(resize_mode=2, inpainting_mask_invert=1, inpaint_full_res=1, inpaint_full_res_padding=48)
    p = ui.build_processing(v)
    assert (p.resize_mode, p.inpainting_mask_invert, p.inpaint_full_res, p.inpaint_full_res_padding) == (
        2,
        1,
        True,
        48,
    )


def test_batch_without_an_input_folder_is_a_message():
    with pytest.raises(ValueError, match="input directory"):
        ui.batch_folders(values(mode=ui.MODE_BATCH))


# -- paste --------------------------------------------------------------------------------------------
def test_paste_restores_the_img2img_keys():
    text = (
        "a fox\nSteps: 5, Sampler: Euler, CFG scale: 6, Seed: 3, Size: 64x64, Denoising strength: 0.4, "
        "Image CFG scale: 1.2, Mask blur: 8, Mask mode: Inpaint not masked, Masked content: latent noise, "
        "Inpaint area: Only masked, Masked area padding: 64, Resize mode: Crop and resize"
    )
    out = paste.paste(text, None, None, None, paste.IMG2IMG_FIELDS)
    got = dict(zip((*paste.IMG2IMG_FIELDS, "note"), out, strict=True))
    assert got["denoising_strength"] == 0.4 and got["image_cfg_scale"] == 1.2
    assert got["mask_blur"] == 8 and got["inpaint_full_res_padding"] == 64
    assert got["inpainting_mask_invert"] == "Inpaint not masked"
    assert got["inpainting_fill"] == "latent noise"
    assert got["inpaint_full_res"] == "Only masked"
    assert got["resize_mode"] == "Crop and resize"
    assert got["note"] == ""


def test_paste_of_an_unknown_masked_content_is_noted_and_left_alone():
    out = paste.infotext_values("a\nSteps: 5, Sampler: Euler, Masked content: sparkles")
    assert "inpainting_fill" not in out.values
    assert any("Masked content" in n for n in out.notes)


# -- on a real App with the tiny demo model -----------------------------------------------------------
@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("img2img"), loaded=True)


def run(app, v: ui.Img2ImgValues) -> list[dict]:
    args = [getattr(v, name) for name in ui.INPUT_NAMES]
    return [as_dict(out) for out in ui.generate(app, *args)]


def test_generate_makes_an_image_of_the_requested_size_and_infotext(app):
    outs = run(app, values(prompt="a red square", denoising_strength=0.5))
    last = outs[-1]
    assert last["error"] == "", last["error"]
    images = last["gallery"]["value"]
    assert images and images[0].size == (64, 64)
    assert "Denoising strength: 0.5" in last["info_state"]["infotexts"][0]


def test_inpaint_changes_only_the_masked_part(app):
    source = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (64, 1, 3)))
    v = values(
        mode=ui.MODE_INPAINT,
        init_img_with_mask=editor(source, (16, 16, 48, 48)),
        denoising_strength=1.0,
        inpainting_fill=2,
        mask_blur=0,
    )
    last = run(app, v)[-1]
    assert last["error"] == "", last["error"]
    out = np.asarray(last["gallery"]["value"][0].convert("RGB")).astype(int)
    src = np.asarray(source).astype(int)
    outside = np.ones((64, 64), bool)
    outside[12:52, 12:52] = False
    assert np.abs(out - src)[outside].max() <= 2
    assert np.abs(out - src)[20:44, 20:44].mean() > 10


def test_a_bad_value_is_a_message_not_a_crash(app):
    last = run(app, values(init_img=None))[-1]
    assert "choose an image" in last["error"]


def test_send_to_inpaint_copies_the_image_and_its_parameters(app):
    info = {
        "infotexts": ["a dog\nSteps: 7, Sampler: Euler, CFG scale: 5, Seed: 11, Size: 64x64"],
        "selected": 0,
    }
    tab = _tab(app)
    out = ui.send_to(app, tab, "inpaint", [(red((64, 48)), None)], info)
    names = [n for n in paste.IMG2IMG_FIELDS if n in tab.controls]
    init_img, editor_value, *fields = out[: 2 + len(names)]
    got = dict(zip(names, fields, strict=True))
    assert init_img == gr.skip() and editor_value["background"].size == (64, 48)
    assert got["prompt"] == "a dog" and got["steps"] == 7 and got["seed"] == 11
    assert (got["width"], got["height"]) == (64, 48)  # send_size: the image's size
    mode, _inpaint_group, mode_tabs, top_tabs = out[2 + len(names) :]
    assert mode == ui.MODE_INPAINT
    assert mode_tabs.selected == "inpaint" and top_tabs.selected == "img2img"


def _tab(app) -> ui.Img2ImgTab:
    with gr.Blocks(), gr.Tabs(), gr.Tab("img2img", id="img2img"):
        return ui.create_img2img_tab(app)


def test_save_writes_the_selected_image_a_log_row_and_a_zip(app):
    last = run(app, values(prompt="a saved square", n_iter=2))[-1]
    info = last["info_state"]
    images = [(img, None) for img in last["gallery"]["value"]]
    files, note = output_panel.save_files(app, images, {**info, "selected": 1})
    assert "Saved:" in note and len([f for f in files if f.suffix == ".png"]) == 1
    folder = app.paths.resolve(app.options.outdir_save)
    assert files[0].parent == folder
    rows = list(csv.reader((folder / "log.csv").open(encoding="utf8")))
    assert rows[0] == output_panel.LOG_COLUMNS and rows[-1][0] == "a saved square"
    zipped, _ = output_panel.save_files(app, images, {**info, "selected": 1}, make_zip=True)
    assert zipped[0].suffix == ".zip" and zipfile.ZipFile(zipped[0]).namelist()


def test_batch_runs_every_image_of_the_folder_into_the_output_folder(app):
    inputs = app.paths.resolve("batch-in")
    inputs.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        red().save(inputs / name)
    out_dir = app.paths.resolve("batch-out")
    v = values(mode=ui.MODE_BATCH, init_img=None, batch_input_dir=str(inputs), batch_output_dir=str(out_dir))
    outs = run(app, v)
    last = outs[-1]
    assert last["error"] == "", last["error"]
    assert len(last["gallery"]["value"]) == 2
    assert sorted(f.stem for f in out_dir.glob("*.png")) == ["a", "b"]


def test_open_folder_names_the_folder_when_the_server_has_no_desktop(app, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    run(app, values(prompt="for the folder"))
    note = output_panel.open_folder_note(app, "img2img", None)
    assert "img2img-images" in note and "no desktop" in note


def test_image_cfg_scale_is_hidden_for_a_model_without_image_conditioning(app):
    run(app, values())  # the demo model is loaded
    assert app.models.active.sd.unet.config.in_channels == 4
    assert ui.image_cfg_visible(app)["visible"] is False


def test_save_selected_only_is_a_setting_and_off_saves_every_image(app):
    """A1111's `save_selected_only` is a real setting (Settings tab, /options): off, 💾 saves them all."""
    last = run(app, values(prompt="all of them", n_iter=2))[-1]
    images = [(img, None) for img in last["gallery"]["value"]]
    app.settings.set({"save_selected_only": False})
    try:
        files, _ = output_panel.save_files(app, images, {**last["info_state"], "selected": 1})
    finally:
        app.settings.set({"save_selected_only": True})
    assert len([f for f in files if f.suffix == ".png"]) == len(images) > 1
