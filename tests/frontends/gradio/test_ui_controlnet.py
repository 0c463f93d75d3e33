"""The ControlNet accordion's handlers without a browser: the model list filtered by family, the
preprocessor sliders, the preview, a blank canvas, UI values -> units, and bad units as messages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from diffusers import ControlNetModel
from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.frontends.gradio import controlnet_handlers as h
from modules.sumi.frontends.gradio import txt2img as ui
from modules.sumi.services.controlnet.models import ControlNetModels
from modules.sumi.services.controlnet.units import ControlNetUnit
from tests.fixtures.tiny_controlnets import (
    shapes_image,
    tiny_controlnet,
    write_diffusers_file,
    write_lllyasviel,
)
from tests.fixtures.tiny_ip_adapter import (
    ip_adapter_state,
    tiny_clip_vision,
    write_clip_vision,
    write_ip_adapter,
)
from tests.fixtures.tiny_models import jitter

SIZE = 64
CANNY = "control_tiny_canny"
XL = "control_xl_only"
IP = "ip-adapter_sd15"


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("cn-ui"), "--nowebui")
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    folder = app.paths.controlnet_dir
    write_lllyasviel(folder / f"{CANNY}.safetensors", jitter(ControlNetModel.from_unet(demo.unet), 5))
    write_lllyasviel(folder / f"{XL}.safetensors", tiny_controlnet("SDXL")["controlnet"])
    write_ip_adapter(folder / f"{IP}.safetensors", ip_adapter_state(demo.unet, "plain", 1))
    write_clip_vision(folder / "annotators" / "clip_vision" / "clip_h.pth", tiny_clip_vision(4))
    app.controlnet.models.refresh()
    app.queue.run("load model", app.models.get)  # the demo checkpoint (SD1) is the active model
    return app


def name_of(app, stem: str) -> str:
    return next(n for n in app.controlnet.models.names() if n.startswith(stem + " ["))


# -- model list ----------------------------------------------------------------------------------------
def test_family_of_reads_headers_of_every_layout_and_caches(tmp_path, monkeypatch):
    for family in ("SD1", "SDXL"):
        net = tiny_controlnet(family)["controlnet"]
        write_lllyasviel(tmp_path / f"{family}.safetensors", net)
        write_lllyasviel(tmp_path / f"{family}_pickle.pth", net)
        write_diffusers_file(tmp_path / f"{family}_diffusers.safetensors", net)
        net.save_pretrained(tmp_path / f"{family}_folder")
    (tmp_path / "broken.safetensors").write_bytes(b"not a model")
    models = ControlNetModels([tmp_path])
    families = {f.stem: models.family_of(f) for f in models.list()}
    assert families == {
        "broken": None,
        **{
            f"{fam}{kind}": fam
            for fam in ("SD1", "SDXL")
            for kind in ("", "_pickle", "_diffusers", "_folder")
        },
    }
    import modules.sumi.services.controlnet.models as cm

    monkeypatch.setattr(cm, "_read_family", lambda *a: pytest.fail("read again"))
    assert models.family_of(models.list()[1]) is not None  # cached per (path, mtime)
    sd1 = models.names_for_family("SD1")
    assert sd1[0] == "None" and any(n.startswith("broken [") for n in sd1)  # unknown stays listed
    assert not any(n.startswith("SDXL") for n in sd1) and len(sd1) == 6
    assert models.names_for_family(None) == models.names()


def test_model_choices_follow_the_loaded_checkpoint(app, monkeypatch):
    assert h.active_family(app) == "SD1"
    choices = h.model_choices(app)
    assert choices[0] == "None" and name_of(app, CANNY) in choices
    assert not any(c.startswith(XL) for c in choices)
    monkeypatch.setattr(app.models, "active", None)
    assert any(c.startswith(XL) for c in h.model_choices(app))  # nothing loaded: every model


def test_refresh_keeps_a_choice_still_offered(app):
    canny = name_of(app, CANNY)
    kept, dropped = h.refresh_model_dropdowns(app, canny, "gone [00000000]", rescan=True)
    assert kept["value"] == canny and dropped["value"] == "None"
    assert kept["choices"] == h.model_choices(app)


# -- preprocessor sliders ------------------------------------------------------------------------------
def test_canny_shows_its_thresholds_and_the_resolution():
    res, a, b = h.preprocessor_changed("canny", False, 640)
    assert res["visible"] and res["value"] == 640  # the user's resolution is kept
    assert (res["label"], res["minimum"], res["maximum"], res["step"]) == (
        "Preprocessor Resolution",
        64,
        2048,
        8,
    )
    assert (a["label"], a["minimum"], a["maximum"], a["value"], a["step"]) == (
        "Low Threshold",
        1,
        255,
        100,
        1,
    )
    assert (b["label"], b["value"], b["visible"]) == ("High Threshold", 200, True)


def test_unused_sliders_are_hidden():
    res, a, b = h.preprocessor_changed("none", False, 512)
    assert not res["visible"] and not a["visible"] and not b["visible"]
    res, a, b = h.preprocessor_changed("threshold", False, 512)
    assert res["visible"] and a["visible"] and a["label"] == "Binarization Threshold" and not b["visible"]
    res, _, _ = h.preprocessor_changed("canny", True, 512)  # pixel perfect computes the resolution
    assert not res["visible"]
    assert h.pixel_perfect_changed("canny", False)["visible"] is True
    assert h.pixel_perfect_changed("shuffle", False)["visible"] is False


# -- values -> units -----------------------------------------------------------------------------------
def flat(*units: h.UnitValues) -> list:
    return [getattr(u, name) for u in units for name in h.UNIT_INPUTS]


def test_values_become_units_with_the_extension_fields(app):
    image = shapes_image()
    first = h.UnitValues(
        enabled=True,
        image=image,
        module="canny",
        model=name_of(app, CANNY),
        weight=0.5,
        guidance_start=0.1,
        guidance_end=0.8,
        processor_res=256.0,
        threshold_a=50.0,
        threshold_b=150.0,
        pixel_perfect=True,
        low_vram=True,
        resize_mode="Resize and Fill",
        control_mode="ControlNet is more important",
    )
    units = h.units_from_values(flat(first, h.UnitValues(), h.UnitValues()))
    assert len(units) == 3 and all(isinstance(u, ControlNetUnit) for u in units)
    u = units[0]
    assert (u.enabled, u.module, u.model, u.weight, u.processor_res) == (True, "canny", first.model, 0.5, 256)
    assert (u.guidance_start, u.guidance_end, u.threshold_a, u.threshold_b) == (0.1, 0.8, 50.0, 150.0)
    assert (u.pixel_perfect, u.low_vram, u.resize_mode) == (True, True, "Resize and Fill")
    assert u.control_mode == "ControlNet is more important"
    assert len(u.images) == 1 and np.array_equal(u.images[0], image)
    assert not units[1].enabled and units[1].images == []
    assert h.units_from_values([]) == []


def test_hidden_sliders_become_the_api_default():
    unit = h.unit_from_values(0, h.UnitValues(module="threshold", threshold_a=90.0, threshold_b=0.5))
    assert (unit.processor_res, unit.threshold_a, unit.threshold_b) == (512, 90.0, -1)
    unit = h.unit_from_values(0, h.UnitValues(module="none", threshold_a=0.5, threshold_b=0.5))
    assert (unit.processor_res, unit.threshold_a, unit.threshold_b) == (-1, -1, -1)


def test_the_union_control_type_dropdown_reaches_the_unit():
    assert h.unit_from_values(0, h.UnitValues()).union_control_type == "Unknown"
    unit = h.unit_from_values(0, h.UnitValues(module="canny", union_control_type="Depth"))
    assert unit.union_control_type == "Depth"


def test_the_canvas_tab_gives_the_drawing_and_transparency_is_white():
    drawing = np.zeros((32, 48, 4), np.uint8)  # transparent, one opaque black line
    drawing[10, :, 3] = 255
    canvas = {"background": None, "layers": [], "composite": drawing}
    unit = h.unit_from_values(
        0, h.UnitValues(enabled=True, source=h.CANVAS, canvas=canvas, image=shapes_image())
    )
    (image,) = unit.images
    assert image.shape == (32, 48, 3) and image[0, 0].tolist() == [255, 255, 255]
    assert image[10, 5].tolist() == [0, 0, 0]


def test_bad_values_name_the_unit():
    with pytest.raises(InvalidRequestError, match=r"ControlNet unit 1: guidance_start \(0.9\) is after"):
        h.units_from_values(flat(h.UnitValues(), h.UnitValues(guidance_start=0.9, guidance_end=0.2)))


def test_new_canvas_is_white_at_the_chosen_size():
    value, tabs, source, group = h.create_canvas(320.0, 192.0)
    assert value["composite"].shape == (192, 320, 3) and value["composite"].min() == 255
    assert source == h.CANVAS and tabs.selected == h.CANVAS and group["visible"] is False


# -- preview -------------------------------------------------------------------------------------------
def preview(app, **kw):
    args = dict(
        module="canny",
        source=h.IMAGE,
        image=shapes_image(),
        canvas=None,
        processor_res=64.0,
        threshold_a=100.0,
        threshold_b=200.0,
        pixel_perfect=False,
        resize_mode="Crop and Resize",
        width=64.0,
        height=64.0,
    )
    return h.run_preview(app, 0, **{**args, **kw})


def test_preview_equals_the_detect_service(app):
    shown, allow, group, message = preview(app)
    expected = app.controlnet.detect("canny", [shapes_image()], 64, 100, 200)[0].map
    assert np.array_equal(shown["value"], expected) and message == ""
    assert allow is True and group["visible"] is True
    assert np.array_equal(expected[:, :, 0], cv2.Canny(shapes_image(), 100, 200))


def test_pixel_perfect_preview_uses_the_generation_size(app):
    shown, *_ = preview(app, pixel_perfect=True, width=128.0, height=128.0, processor_res=512.0)
    assert shown["value"].shape == (128, 128, 3)  # resolution 128 from a 64px image and a 128px target


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"image": None}, "ControlNet unit 0 has no image to preview"),
        ({"source": h.CANVAS}, "ControlNet unit 0 has no canvas to preview"),
        ({"module": "depth_midas"}, "needs"),
        ({"module": "no such thing"}, "no such thing"),
    ],
)
def test_preview_problems_are_messages(app, kw, text):
    shown, allow, _group, message = preview(app, **kw)
    assert 'class="sumi-error"' in message and text in message
    assert shown is not None and not isinstance(allow, bool)  # skipped: nothing else changes


def test_missing_annotator_names_the_file(app):
    *_, message = preview(app, module="depth_midas")
    assert "dpt_hybrid-midas-501f0c75.pt" in message and str(app.controlnet.annotator_dir) in message


def test_mediapipe_face_preview_draws_the_mesh_or_says_what_to_install(app, monkeypatch):
    skimage = pytest.importorskip("skimage")
    face = np.asarray(Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB"))
    kw = {
        "module": "mediapipe_face",
        "image": face,
        "processor_res": 512.0,
        "threshold_a": 1.0,
        "threshold_b": 0.5,
    }
    if importlib.util.find_spec("mediapipe") is not None:
        shown, _allow, _group, message = preview(app, **kw)
        assert message == "" and shown["value"].any(axis=2).mean() > 0.005
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions.face_mesh", None)
    *_, message = preview(app, **{**kw, "threshold_b": 0.6})  # not the detection kept above
    assert 'class="sumi-error"' in message and "pip install --no-deps mediapipe" in message


# -- Generate ------------------------------------------------------------------------------------------
def txt2img_values(**changes) -> list:
    base = {"prompt": "a fox", "steps": 2.0, "width": 64.0, "height": 64.0, "sampler_name": "Euler"}
    v = ui.Txt2ImgValues(**{**base, **changes})
    return [getattr(v, name) for name in ui.INPUT_NAMES]


def run(app, *units: h.UnitValues) -> dict:
    outs = list(ui.generate(app, *txt2img_values(), *flat(*units)))
    return dict(zip(ui.OUTPUTS, outs[-1], strict=True))


def test_generate_with_a_unit_gives_the_image_and_the_map(app):
    unit = h.UnitValues(
        enabled=True, image=shapes_image(), module="canny", model=name_of(app, CANNY), processor_res=64.0
    )
    out = run(app, unit, h.UnitValues())
    assert len(out["gallery"]["value"]) == 2
    assert 'ControlNet 0: "Module: canny, Model: control_tiny_canny [' in out["info_state"]["infotexts"][0]


def test_generate_with_an_ip_adapter_unit_steers_the_image_without_a_map(app):
    plain = run(app, h.UnitValues())["gallery"]["value"]
    unit = h.UnitValues(enabled=True, image=shapes_image(), module="ip-adapter-auto", model=name_of(app, IP))
    out = run(app, unit)
    assert len(out["gallery"]["value"]) == 1  # the picture is a prompt: no detected map
    shown, before = out["gallery"]["value"][0].convert("RGB"), plain[0].convert("RGB")
    assert not np.array_equal(np.asarray(shown), np.asarray(before))
    assert (
        'ControlNet 0: "Module: ip-adapter-auto, Model: ip-adapter_sd15 ['
        in out["info_state"]["infotexts"][0]
    )
    *_, message = preview(app, module="ip-adapter-auto")
    assert "nothing to preview" in message


def test_the_control_type_narrows_the_lists_and_picks_the_defaults(app):
    module, model = h.control_type_changed(app, "IP-Adapter")
    assert module["value"] == "ip-adapter-auto" and "canny" not in module["choices"]
    assert model["value"] == name_of(app, IP) and model["choices"] == ["None", name_of(app, IP)]
    module, model = h.control_type_changed(app, "Canny")
    assert (
        module["value"] == "canny" and "canny" in model["value"] and name_of(app, CANNY) in model["choices"]
    )
    assert not any(m.startswith(IP) for m in model["choices"])
    module, model = h.control_type_changed(app, "Reference")
    assert module["value"] == "reference_only" and model["value"] == "None"
    module, model = h.control_type_changed(app, "All")
    assert module["value"] == "none" and module["choices"] == h.preprocessor_labels()
    assert model["choices"] == h.model_choices(app)


def test_the_batch_tab_runs_one_job_per_picture_of_its_folder(app):
    folder = app.paths.data_dir / "ui-batch"
    folder.mkdir(exist_ok=True)
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((64, 64, 3), 60 + 120 * i, np.uint8))
    unit = h.UnitValues(
        enabled=True,
        source=h.BATCH,
        module="reference_only",
        batch_images="ui-batch",
        output_dir="ui-batch-out",
    )
    out = run(app, unit)
    assert not out["error"] and len(out["gallery"]["value"]) == 2
    assert sorted(p.name for p in (app.paths.data_dir / "ui-batch-out").iterdir()) == ["0.png", "1.png"]


def test_the_multi_inputs_tab_sends_its_pictures_together(app, tmp_path):
    files = []
    for i in range(2):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.full((64, 64, 3), 40 + 150 * i, np.uint8))
        files.append(str(path))
    values = h.UnitValues(
        enabled=True, source=h.MERGE, merge_files=files, module="ip-adapter-auto", model=name_of(app, IP)
    )
    unit = h.unit_from_values(0, values)
    assert unit.input_mode == "merge" and len(unit.images) == 2
    out = run(app, values)
    assert not out["error"] and len(out["gallery"]["value"]) == 1
    bad = tmp_path / "notes.txt"
    bad.write_text("not a picture")
    failed = run(app, h.UnitValues(**{**values.__dict__, "merge_files": [str(bad)]}))
    assert "not a picture" in failed["error"]


def test_generate_with_a_reference_unit_needs_no_model(app):
    plain = run(app, h.UnitValues())["gallery"]["value"][0].convert("RGB")
    unit = h.UnitValues(enabled=True, image=shapes_image(), module="reference_only", model="None")
    out = run(app, unit)
    assert not out["error"]
    shown = out["gallery"]["value"][0].convert("RGB")
    assert not np.array_equal(np.asarray(shown), np.asarray(plain))
    assert 'ControlNet 0: "Module: reference_only, Model: None' in out["info_state"]["infotexts"][0]


@pytest.mark.parametrize(
    ("unit", "text"),
    [
        (dict(image=None), "ControlNet unit 0 is enabled but has no image"),
        (dict(model="nothing like it"), "ControlNet model not found: &#x27;nothing like it&#x27;"),
        (dict(model=XL), "is for SDXL; the loaded checkpoint is SD1"),
        (dict(module="depth_midas"), "dpt_hybrid-midas-501f0c75.pt"),
        (dict(weight=3.0), "weight must be from 0 to 2"),
        (dict(image=np.zeros((1, 16385, 3), np.uint8)), "is too large (16385x1)"),
    ],
)
def test_bad_units_are_messages_and_the_app_keeps_working(app, unit, text):
    base = dict(enabled=True, image=shapes_image(), module="canny", model=name_of(app, CANNY))
    out = run(app, h.UnitValues(**{**base, **unit}))
    assert 'class="sumi-error"' in out["error"] and text in out["error"]
    assert len(run(app, h.UnitValues())["gallery"]["value"]) == 1


# -- layout --------------------------------------------------------------------------------------------
UNIT_IDS = (
    "input_image",
    "canvas",
    "generated_image",
    "controlnet_enable_checkbox",
    "controlnet_low_vram_checkbox",
    "controlnet_pixel_perfect_checkbox",
    "controlnet_preprocessor_preview_checkbox",
    "controlnet_type_filter_radio",
    "controlnet_preprocessor_dropdown",
    "controlnet_trigger_preprocessor",
    "controlnet_model_dropdown",
    "controlnet_refresh_models",
    "controlnet_control_weight_slider",
    "controlnet_start_control_step_slider",
    "controlnet_ending_control_step_slider",
    "controlnet_preprocessor_resolution_slider",
    "controlnet_threshold_A_slider",
    "controlnet_threshold_B_slider",
    "controlnet_resize_mode_radio",
    "controlnet_control_mode_radio",
    "controlnet_open_new_canvas_button",
    "controlnet_canvas_width",
    "controlnet_canvas_height",
    "controlnet_canvas_create_button",
    "controlnet_mask_upload_checkbox",
    "mask_image",
    "controlnet_advanced_weighting",
    "controlnet_weight_type",
    "controlnet_weight_composition",
    "controlnet_advanced_weights",
    "controlnet_weight_plot",
)


def test_the_accordion_has_one_tab_per_unit_with_the_extension_ids(app):
    from modules.sumi.frontends.gradio import build_ui

    config = build_ui(app).get_config_file()
    props = {c["props"].get("elem_id"): c for c in config["components"] if c["props"].get("elem_id")}
    assert props["txt2img_controlnet"]["props"]["label"] == "ControlNet"
    for i in range(3):
        missing = [x for x in UNIT_IDS if f"txt2img_controlnet_ControlNet-{i}_{x}" not in props]
        assert not missing, f"unit {i} lacks {missing}"
    assert "txt2img_controlnet_ControlNet-3_input_image" not in props
    unit = {x: props[f"txt2img_controlnet_ControlNet-0_{x}"]["props"] for x in UNIT_IDS}
    weight = unit["controlnet_control_weight_slider"]
    assert (weight["minimum"], weight["maximum"], weight["step"], weight["value"]) == (0, 2, 0.05, 1)
    assert unit["controlnet_preprocessor_dropdown"]["value"] == "none"
    assert unit["controlnet_model_dropdown"]["value"] == "None"
    assert unit["controlnet_resize_mode_radio"]["value"] == "Crop and Resize"
    assert unit["controlnet_control_mode_radio"]["value"] == "Balanced"
    assert unit["controlnet_preprocessor_resolution_slider"]["visible"] is False
    # choosing a preprocessor updates its three sliders and nothing else of the unit
    module_id = props["txt2img_controlnet_ControlNet-0_controlnet_preprocessor_dropdown"]["id"]
    change = next(d for d in config["dependencies"] if (module_id, "change") in map(tuple, d["targets"]))
    sliders = {
        props[f"txt2img_controlnet_ControlNet-0_controlnet_{x}"]["id"]
        for x in ("preprocessor_resolution_slider", "threshold_A_slider", "threshold_B_slider")
    }
    assert set(change["outputs"]) == sliders


def test_paste_restores_a_unit_from_its_infotext_entry(app):
    import gradio as gr

    from modules.infotext_utils import field_value, parse_generation_parameters
    from modules.sumi.frontends.gradio.controlnet import create_controlnet

    with gr.Blocks():
        ui = create_controlnet(app, "txt2img")
    model = name_of(app, CANNY)
    entry = (
        f'ControlNet 1: "Module: invert, Model: {model}, Weight: 0.6, Resize Mode: Just Resize, '
        "Processor Res: 256, Threshold A: -1, Threshold B: -1, Guidance Start: 0.1, Guidance End: 0.8, "
        'Pixel Perfect: True, Control Mode: My prompt is more important"'
    )
    params = parse_generation_parameters(f"a fox\nSteps: 2, Sampler: Euler, {entry}", skip_fields=[])
    fields = h.paste_fields(app, ui.units)
    pasted = {(id(c)): field_value(c, key, params) for c, key in fields}
    one, zero = ui.units[1].values, ui.units[0].values
    assert pasted[id(one["enabled"])] is True
    assert pasted[id(one["module"])] == "invert (from white bg & black line)"
    assert pasted[id(one["model"])]["value"] == model
    assert pasted[id(one["weight"])] == 0.6 and pasted[id(one["guidance_end"])] == 0.8
    assert pasted[id(one["resize_mode"])] == "Just Resize"
    assert pasted[id(one["control_mode"])] == "My prompt is more important"
    assert pasted[id(one["pixel_perfect"])] is True
    skipped = [pasted[id(zero[name])] for name in ("enabled", "module", "model", "weight")]
    assert all(
        isinstance(value, dict) and value.get("__type__") != "update" or value is not None
        for value in skipped
    )
    assert all(value == gr.skip() for value in skipped)  # unit 0 has no entry: left as it is


def test_weight_types_fill_an_ip_adapter_units_weights_and_the_plot_shows_them(app):
    filled = h.weight_type_weights(app, "ip-adapter-auto", "style transfer", 0.8, 1.0)["value"]
    weights = h.parse_weights(filled, 0)
    assert weights is not None and len(weights) == 16  # the demo checkpoint is SD1
    assert [i for i, w in enumerate(weights) if w] == [0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15]
    assert h.weight_type_weights(app, "ip-adapter-auto", "normal", 0.8, 1.0)["value"] == ""
    assert "value" not in h.weight_type_weights(app, "canny", "ease in", 0.8, 1.0)  # typed weights stay
    plot = h.weights_plot(app, "ip-adapter-auto", filled)
    assert plot["visible"] is True and plot["value"]["part"].tolist()[5:8] == ["input", "middle", "output"]
    assert h.weights_plot(app, "canny", "")["visible"] is False
    assert h.parse_weights("1, 0.5 2", 0) == [1.0, 0.5, 2.0] and h.parse_weights("[1, 0]", 0) == [1.0, 0.0]
    with pytest.raises(InvalidRequestError, match="ControlNet unit 2: Weights must be numbers"):
        h.parse_weights("strong", 2)


def test_generate_with_weights_and_a_region_mask_from_the_ui(app):
    from modules.sumi.engine.controlnet.ip_adapter import transformer_blocks

    def first(*units) -> np.ndarray:
        outs = list(ui.generate(app, *txt2img_values(seed=7.0), *flat(*units)))
        gallery = dict(zip(ui.OUTPUTS, outs[-1], strict=True))["gallery"]
        return np.asarray(gallery["value"][0].convert("RGB"))

    plain = first(h.UnitValues())
    blocks = len(set(transformer_blocks(app.models.active.sd.unet).values()))
    ip = {"enabled": True, "image": shapes_image(), "module": "ip-adapter-auto", "model": name_of(app, IP)}
    steered = first(h.UnitValues(**ip))
    assert not np.array_equal(steered, plain)
    np.testing.assert_array_equal(first(h.UnitValues(**ip, advanced_weighting=str([0] * blocks))), plain)
    np.testing.assert_array_equal(first(h.UnitValues(**ip, advanced_weighting=str([1] * blocks))), steered)
    black = np.zeros((SIZE, SIZE, 3), np.uint8)
    np.testing.assert_array_equal(first(h.UnitValues(**ip, effective_region_mask=black)), plain)
    canny = {"enabled": True, "image": shapes_image(), "module": "canny", "model": name_of(app, CANNY)}
    np.testing.assert_array_equal(first(h.UnitValues(**canny, effective_region_mask=black)), plain)
