"""Sumi's built-in scripts (Prompt matrix, X/Y/Z plot, Prompts from file or textbox) driven through the
API as A1111 clients drive them, checked cell by cell against single generations, plus their parsers
and the grid legends."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from modules.sumi.builtin_scripts import xyz_grid as xyz_ui
from modules.sumi.builtin_scripts.prompt_matrix import batches, matrix_prompts
from modules.sumi.builtin_scripts.prompts_from_file import parse_line
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.grids import GridAnnotation, draw_grid_annotations, draw_prompt_matrix
from modules.sumi.services.images.saving import image_grid
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.script_jobs import with_params
from modules.sumi.services.jobs.xyz_controlnet import CONTROLNET_AXES
from modules.sumi.services.jobs.xyz_plot import (
    TXT2IMG_AXES,
    expand_values,
    find_axis,
    float_range,
    int_range,
    processing_order,
    split_csv,
)
from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.tiny_models import write_tiny_checkpoint

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 4, "sampler_name": "Euler", "prompt": "a fox"}
XYZ_DEFAULTS = [
    1,
    "",
    None,
    0,
    "",
    None,
    0,
    "",
    None,
    True,
    False,
    False,
    False,
    False,
    False,
    False,
    0,
    False,
]
A1111_TXT2IMG_AXES = [  # v1.10.1 scripts/xyz_grid.py, txt2img tab
    "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Prompt S/R",
    "Prompt order", "Sampler", "Hires sampler", "Checkpoint name", "Negative Guidance minimum sigma",
    "Sigma Churn", "Sigma min", "Sigma max", "Sigma noise", "Schedule type", "Schedule min sigma",
    "Schedule max sigma", "Schedule rho", "Beta schedule alpha", "Beta schedule beta", "Eta", "Clip skip",
    "Denoising", "Initial noise multiplier", "Extra noise", "Hires upscaler", "VAE", "Styles", "UniPC Order",
    "Face restore", "Token merging ratio", "Token merging ratio high-res", "Always discard next-to-last sigma",
    "SGM noise multiplier", "Refiner checkpoint", "Refiner switch at", "RNG source", "FP8 mode", "Size",
]  # fmt: skip


# --- parsers ---------------------------------------------------------------------------------------


def test_int_ranges_follow_a1111_syntax():
    assert int_range("1-5") == [1, 2, 3, 4, 5]
    assert int_range(" 1 - 10 (+3) ") == [1, 4, 7, 10]
    assert int_range("1-10 [4]") == [1, 4, 7, 10]
    assert int_range("1-10 [3]") == [1, 5, 10]  # linspace, cast to int like A1111
    assert int_range("10-1 (-3)") == [10, 7, 4, 1]
    assert int_range("5-1") == [5, 4, 3, 2, 1]
    assert int_range("-5--3") == [-5, -4, -3]
    assert int_range("7") is None and int_range("-1") is None


def test_float_ranges_never_overshoot_the_end():
    assert float_range("0-1 (+0.25)") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert float_range("0-1 [5]") == [0.0, 0.25, 0.5, 0.75, 1.0]
    tenths = float_range("0-1 (+0.1)")
    assert len(tenths) == 11 and tenths[-1] == 1.0 and tenths[3] == 0.3
    assert float_range("1.5-3") == [1.5, 2.5]
    assert float_range("7.5") is None


def test_values_are_csv_with_quotes_and_ranges():
    assert split_csv('a, "b, c",d') == ["a", "b, c", "d"]
    assert expand_values(int, ["1", "3-4", "8"]) == [1, 3, 4, 8]
    assert expand_values(float, ["7", "1-2 (+0.5)"]) == [7.0, 1.0, 1.5, 2.0]
    assert len(expand_values("permutations", ["a", "b", "c"])) == 6


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (int, "1-10 (+0)", "step of 0"),
        (int, "1-10 (-1)", "gives no values"),
        (int, "1-100000", "at most"),
        (int, "abc", "not a whole number"),
        (int, "2.5", "not a whole number"),
        (float, "x", "not a number"),
        (int, "1-10 [0]", "gives no values"),
    ],
)
def test_bad_values_are_clear_errors(kind, text, message):
    with pytest.raises(InvalidRequestError, match=message):
        expand_values(kind, [text])


@settings(max_examples=200, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 9))
def test_int_step_ranges_are_inclusive_python_ranges(start, end, step):
    step = step if end >= start else -step
    expected = list(range(start, end + (1 if step > 0 else -1), step))
    assert int_range(f"{start}-{end} ({step:+d})") == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(2, 30))
def test_count_ranges_have_the_count_and_both_ends(start, end, count):
    values = int_range(f"{start}-{end} [{count}]")
    assert len(values) == count and values[0] == start and values[-1] == end
    floats = float_range(f"{start}-{end} [{count}]")
    assert len(floats) == count and floats[0] == start and floats[-1] == pytest.approx(end)


def test_axis_types_are_a1111_indices():
    controlnet = [axis.label for axis in CONTROLNET_AXES]  # sd-webui-controlnet appends its axes
    assert [axis.label for axis in TXT2IMG_AXES] == A1111_TXT2IMG_AXES + controlnet
    assert (
        find_axis(4).label == "Steps" and find_axis(6).label == "CFG Scale" and find_axis("29").label == "VAE"
    )
    assert find_axis("cfg scale").label == "CFG Scale"
    supported = {axis.label for axis in TXT2IMG_AXES if axis.supported_on(False)}
    assert supported == {
        "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale", "Prompt S/R", "Prompt order",
        "Sampler", "Checkpoint name", "Schedule type", "Eta", "Clip skip", "VAE", "Styles", "RNG source", "Size",
        "Hires steps", "Hires sampler", "Denoising", "Hires upscaler",
        "Refiner checkpoint", "Refiner switch at", "Negative Guidance minimum sigma", "Sigma Churn",
        "Sigma min", "Sigma max", "Sigma noise", "Schedule min sigma", "Schedule max sigma", "Schedule rho",
        "Beta schedule alpha", "Beta schedule beta", "Extra noise", "Face restore",
        "Always discard next-to-last sigma", "SGM noise multiplier", "FP8 mode", "Token merging ratio",
        "Token merging ratio high-res", "UniPC Order", *controlnet,
    }  # fmt: skip
    with pytest.raises(InvalidRequestError, match="out of range"):
        find_axis(len(TXT2IMG_AXES))


@pytest.mark.parametrize(
    ("value", "restore", "model"),
    [
        ("CodeFormer", True, "CodeFormer"),
        ("gfpgan", True, "GFPGAN"),
        ("Yes", True, None),
        ("False", False, None),
    ],
)
def test_the_face_restore_axis_turns_restoration_on_or_picks_the_restorer(value, restore, model):
    p = SimpleNamespace(restore_faces=None, override_settings={})
    axis = find_axis(32)
    assert axis.label == "Face restore" and axis.apply is not None
    axis.apply(p, value, [value])
    assert p.restore_faces is restore and p.override_settings.get("face_restoration_model") == model


def test_the_costliest_axis_is_iterated_outermost():
    class Axis:
        def __init__(self, cost):
            self.option = type("O", (), {"cost": cost})

    assert processing_order([Axis(0), Axis(0), Axis(0)]) == [2, 1, 0]  # A1111: Z, Y, X
    assert processing_order([Axis(1.0), Axis(0), Axis(0)]) == [0, 2, 1]
    assert processing_order([Axis(0), Axis(0.7), Axis(1.0)]) == [2, 1, 0]
    assert processing_order([Axis(0.7), Axis(1.0), Axis(0)]) == [1, 0, 2]


def test_prompt_order_puts_the_tokens_in_each_order():
    p = StableDiffusionProcessingTxt2Img(prompt="a cat, red, hat")
    order = find_axis(8)
    order.apply(p, ("hat", "cat"), [])
    assert p.prompt == "a hat, red, cat" and order.legend(("hat", "cat")) == "hat, cat"
    with pytest.raises(InvalidRequestError, match="'dog' is not in the prompt"):
        order.apply(p, ("dog", "cat"), [])


def test_matrix_prompts_are_every_combination_in_a1111_order():
    assert matrix_prompts("a cat|red|blue") == ["a cat", "a cat, red", "a cat, blue", "a cat, red, blue"]
    assert matrix_prompts("a cat| red,| blue", put_at_start=True, delimiter=" ") == [
        "a cat",
        "red a cat",
        "blue a cat",
        "red blue a cat",
    ]
    assert len(matrix_prompts("a|b|c|d|e")) == 16
    assert batches(4, 3, 100) == [(0, 3, 1), (3, 1, 1)]
    assert batches(5, 1, 2) == [(0, 1, 2), (2, 1, 2), (4, 1, 1)]


def test_prompt_file_lines_are_parsed_with_types():
    assert parse_line("a plain prompt -- with dashes") == {"prompt": "a plain prompt -- with dashes"}
    fields = parse_line(
        '--steps 3 --prompt "x y" and more --negative_prompt bad --cfg_scale 5.5 --tiling true'
    )
    assert fields == {
        "steps": 3,
        "prompt": "x y and more",
        "negative_prompt": "bad",
        "cfg_scale": 5.5,
        "tiling": True,
    }
    assert parse_line("--sampler_name 'euler a' --styles 'one, two'") == {
        "sampler_name": "Euler a",
        "styles": ["one", "two"],
    }
    for line, message in [
        ("--stepz 3", "unknown option '--stepz'"),
        ("--steps", "--steps needs a value"),
        ("--steps three", "expects a whole number"),
        ("--tiling yes", "expects true or false"),
        ("--sampler_name nope", "Sampler not found"),
        ('--prompt "unclosed', "cannot split"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_line(line)


def test_grid_params_join_the_infotext_before_version():
    info = "a cat\nNegative prompt: ugly\nSteps: 2, Sampler: Euler, Seed: 4, Version: sumi-0.1.0"
    text = with_params(info, {"Script": "X/Y/Z plot", "X Type": "Steps", "X Values": "1, 2"})
    assert text.endswith('Script: X/Y/Z plot, X Type: Steps, X Values: "1, 2", Version: sumi-0.1.0')
    parsed = parse_infotext(text)
    assert parsed["X Values"] == "1, 2" and parsed["Negative prompt"] == "ugly" and parsed["Steps"] == "2"


def test_legends_add_room_around_the_cells():
    cells = [Image.new("RGB", (64, 64), color) for color in ("red", "green", "blue", "white")]
    grid = image_grid(cells, rows=2)
    drawn = draw_grid_annotations(
        grid,
        64,
        64,
        [[GridAnnotation("a")], [GridAnnotation("b")]],
        [[GridAnnotation("c")], [GridAnnotation("d")]],
    )
    assert drawn.width == 128 + 48 and drawn.height > 128
    assert drawn.getpixel((48 + 10, drawn.height - 10)) == (0, 0, 255)  # bottom-left cell, after the legend
    spaced = draw_grid_annotations(grid, 64, 64, [[GridAnnotation()]] * 2, [[GridAnnotation()]] * 2, margin=6)
    assert spaced.size == (134, 134)
    matrix = draw_prompt_matrix(grid, 64, 64, ["a cat", "red", "blue"])
    assert matrix.size == drawn.size or matrix.width == drawn.width
    with pytest.raises(ValueError, match="needs 2 column and 2 row legends"):
        draw_grid_annotations(grid, 64, 64, [[GridAnnotation("a")]], [[GridAnnotation("c")]])


# --- through the API -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("builtin_scripts") / "data", "--nowebui")
    app.queue.run("wait for the first load", lambda: None)
    write_tiny_checkpoint(app.paths.ckpt_dirs[0] / "zz_second.safetensors", "SD1", seed=1)
    app.checkpoints.refresh()
    return app


def _post(client, status: int = 200, **body) -> dict:
    return post_txt2img(client, {**BODY, **body}, status)


def _single(client, **body) -> np.ndarray:
    return decode_pixels(_post(client, **body)["images"][0])


def _xyz(client, status: int = 200, *, args: dict, **body) -> dict:
    names = ["x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown", "z_type"]
    names += ["z_values", "z_values_dropdown", "draw_legend", "include_lone_images", "include_sub_grids"]
    names += ["no_fixed_seeds", "vary_seeds_x", "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode"]
    values = [args.get(name, default) for name, default in zip(names, XYZ_DEFAULTS, strict=True)]
    return _post(client, status, script_name="X/Y/Z plot", script_args=values, **body)


def test_the_scripts_are_listed_with_a1111_args(client):
    names = client.get("/sdapi/v1/scripts").json()["txt2img"]
    builtin = ["prompt matrix", "prompts from file or textbox", "x/y/z plot"]
    assert [name for name in names if name in builtin] == builtin
    # the always-on scripts Sumi has built in, under A1111's names: clients look for them before sending them
    scripts = client.get("/sdapi/v1/scripts").json()
    assert {"controlnet", "refiner"} <= set(scripts["txt2img"]) & set(scripts["img2img"])
    info = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json()}
    assert len(info["x/y/z plot"]["args"]) == 18
    assert info["x/y/z plot"]["args"][0]["value"] == 1  # Seed, A1111's default X type
    assert "Hires steps" not in info["x/y/z plot"]["args"][0]["choices"]  # the img2img entry, listed last
    assert [a["value"] for a in info["prompt matrix"]["args"]] == [False, False, "positive", "comma", 0]


def test_the_controls_build_inside_a_page(app):
    import gradio as gr

    scripts = {s.title(): s for s in app.scripts.txt2img.selectable_scripts}
    with gr.Blocks():
        xyz = scripts["X/Y/Z plot"].ui(False)
        assert len(scripts["Prompt matrix"].ui(False)) == 5
        assert len(scripts["Prompts from file or textbox"].ui(False)) == 5
    assert len(xyz) == 18 and xyz[0].value == 1 and xyz[3].value == 0 and xyz[9].value is True
    fill, text, dropdown = xyz_ui._select_axis(9, "Euler, Nope", [], False)
    assert dropdown["value"] == ["Euler"] and dropdown["visible"] and not text["visible"] and fill["visible"]
    fill, text, dropdown = xyz_ui._select_axis(4, "1-3", [], False)
    assert text["visible"] and text["value"] == "1-3" and not dropdown["visible"]
    assert xyz_ui._fill(9, True)[0]["value"].startswith("DPM++ 2M,")
    paste = dict((id(c), key) for c, key in scripts["X/Y/Z plot"].infotext_fields)
    assert paste[id(xyz[0])]({"X Type": "CFG Scale"}) == 6 and paste[id(xyz[1])] == "X Values"
    # A1111's ScriptRunner.infotext_fields: every script's pairs (the built-in Lora's paste callback and
    # extensions look through `scripts.scripts_txt2img.infotext_fields`)
    runner_fields = app.scripts.txt2img.infotext_fields
    assert all(pair in runner_fields for pair in scripts["X/Y/Z plot"].infotext_fields)
    assert [key for _, key in runner_fields].count("X Values") == 1


def test_prompt_matrix_cells_are_single_generations(client):
    body = _post(client, prompt="a fox|red|blue", script_name="prompt matrix", script_args=[False, False])
    info = json.loads(body["info"])
    assert info["all_prompts"] == ["a fox", "a fox, red", "a fox, blue", "a fox, red, blue"]
    assert info["all_seeds"] == [4, 4, 4, 4] and info["index_of_first_image"] == 1
    assert len(body["images"]) == 5 and info["infotexts"][0] == info["infotexts"][1]
    grid = decode_pixels(body["images"][0])
    assert grid.shape[1] > 128 and grid.shape[0] > 128  # 2x2 cells of 64 px plus legends
    for prompt, cell in zip(info["all_prompts"], body["images"][1:], strict=True):
        assert np.array_equal(decode_pixels(cell), _single(client, prompt=prompt))


def test_prompt_matrix_batches_seeds_and_negative_prompts(client):
    body = _post(
        client,
        prompt="a fox",
        negative_prompt="ugly|blurry|dark",
        batch_size=3,
        script_name="Prompt Matrix",
        script_args=[True, True, "negative", "space", 2],
    )
    info = json.loads(body["info"])
    assert info["all_negative_prompts"] == ["ugly", "blurry ugly", "dark ugly", "blurry dark ugly"]
    assert info["all_seeds"] == [4, 5, 6, 7] and info["all_prompts"] == ["a fox"] * 4
    assert len(body["images"]) == 5  # the grid and exactly 4 images, from batches of 3 and 1
    body = _post(client, 400, prompt="|".join("abcdefghijklmnopqrstuvwxyz"), script_name="prompt matrix")
    assert "Prompt matrix: the grid would be too large (33554432 images" in body["detail"]


def test_xyz_steps_by_cfg_cells_are_single_generations(client):
    body = _xyz(
        client,
        args={"x_type": 4, "x_values": "1-2", "y_type": 6, "y_values": "3, 7", "include_lone_images": True},
    )
    info = json.loads(body["info"])
    assert len(body["images"]) == 5 and info["all_seeds"] == [4, 4, 4, 4]
    grid_info = parse_infotext(info["infotexts"][0])
    assert (
        grid_info["Script"] == "X/Y/Z plot"
        and grid_info["X Type"] == "Steps"
        and grid_info["X Values"] == "1-2"
    )
    assert grid_info["Y Type"] == "CFG Scale" and grid_info["Y Values"] == "3, 7"
    assert "Script" not in info["infotexts"][1]
    cells = [(1, 3), (2, 3), (1, 7), (2, 7)]  # X varies fastest, as A1111 stores them
    for (steps, cfg), image in zip(cells, body["images"][1:], strict=True):
        assert np.array_equal(decode_pixels(image), _single(client, steps=steps, cfg_scale=cfg))
    grid = decode_pixels(body["images"][0])
    assert grid.shape[0] > 128 and grid.shape[1] > 128


def test_xyz_sampler_axis_takes_the_new_samplers_and_old_combined_names(client):
    body = _xyz(
        client,
        args={"x_type": 9, "x_values": "DPM++ 2M SDE Heun Karras, DDIM CFG++", "include_lone_images": True},
    )
    infos = [parse_infotext(text) for text in json.loads(body["info"])["infotexts"][1:]]
    assert [(i["Sampler"], i.get("Schedule type")) for i in infos] == [
        ("DPM++ 2M SDE Heun", "Karras"),
        ("DDIM CFG++", "Automatic"),
    ]


def test_xyz_seed_axis_ranges_random_seeds_and_varying_seeds(client):
    body = _xyz(client, args={"x_values": "10-12", "include_lone_images": True}, steps=1)
    assert json.loads(body["info"])["all_seeds"] == [10, 11, 12]
    body = _xyz(client, args={"x_values": "-1, 5"}, steps=1)
    info = json.loads(body["info"])
    assert len(body["images"]) == 1 and -1 not in info["all_seeds"] and info["all_seeds"][1] == 5
    assert parse_infotext(info["infotexts"][0])["Fixed X Values"] == f"{info['all_seeds'][0]}, 5"
    varied = _xyz(client, args={"x_type": 4, "x_values": "1, 2", "vary_seeds_x": True})
    assert json.loads(varied["info"])["all_seeds"] == [4, 5]


def test_xyz_prompt_search_and_replace(client):
    body = _xyz(client, args={"x_type": 7, "x_values": "red, blue, green"}, prompt="a red fox", steps=1)
    assert json.loads(body["info"])["all_prompts"] == ["a red fox", "a blue fox", "a green fox"]
    body = _xyz(client, 400, args={"x_type": 7, "x_values": "purple, blue"}, prompt="a red fox")
    assert "Prompt S/R did not find 'purple'" in body["detail"]


def test_xyz_checkpoint_axis_minimises_switches_and_restores_the_setting(client, app):
    original = app.options.sd_model_checkpoint
    loads: list[str] = []
    app.models.on_model_loaded.append(lambda loaded: loads.append(loaded.checkpoint.name_for_extra))
    try:
        args = {"x_type": 11, "x_values": "zz_second, sumi-demo", "y_type": 4, "y_values": "1, 2"}
        body = _xyz(client, args={**args, "include_lone_images": True})
    finally:
        app.models.on_model_loaded.pop()
    assert loads == ["zz_second", "sumi-demo-shapes"]  # not second, demo, second, demo
    assert app.options.sd_model_checkpoint == original
    assert app.models.active.checkpoint.title == original
    infotexts = json.loads(body["info"])["infotexts"]
    assert "Model: zz_second" in infotexts[1] and "Model: sumi-demo-shapes" in infotexts[2]
    assert np.array_equal(decode_pixels(body["images"][2]), _single(client, steps=1))


def test_xyz_z_axis_makes_one_grid_per_value(client):
    args = {"x_type": 6, "x_values": "3, 7", "z_type": 4, "z_values": "1, 2", "include_sub_grids": True}
    body = _xyz(client, args=args)
    info = json.loads(body["info"])
    assert len(body["images"]) == 3 and info["index_of_first_image"] == 1
    z_info, sub_info = parse_infotext(info["infotexts"][0]), parse_infotext(info["infotexts"][2])
    assert z_info["Z Type"] == "Steps" and z_info["X Type"] == "CFG Scale" and sub_info["Steps"] == "2"
    assert "Z Type" not in sub_info and sub_info["X Values"] == "3, 7"
    z_grid, sub = decode_pixels(body["images"][0]), decode_pixels(body["images"][1])
    assert z_grid.shape[1] >= 2 * sub.shape[1] and z_grid.shape[0] > sub.shape[0]


def test_xyz_settings_axes_are_restored_and_sizes_mix(client, app):
    args = {
        "x_type": 24,
        "x_values": "1, 2",
        "y_type": 29,
        "y_values": "Automatic, None",
        "include_lone_images": True,
    }
    infotexts = json.loads(_xyz(client, args=args, steps=1)["info"])["infotexts"]
    assert (
        "Clip skip" not in infotexts[1] and "Clip skip: 2" in infotexts[2] and "Clip skip: 2" in infotexts[4]
    )
    assert app.options.CLIP_stop_at_last_layers == 1 and app.options.sd_vae == "Automatic"
    sized = _xyz(
        client, args={"x_type": 41, "x_values": "64x64, 64x128", "include_lone_images": True}, steps=1
    )
    shapes = [decode_pixels(image).shape[:2] for image in sized["images"]]
    assert shapes[1:] == [(64, 64), (128, 64)] and shapes[0][0] >= 128


def test_xyz_rng_source_axis_draws_each_source_and_restores_the_setting(client, app):
    rng_axis = A1111_TXT2IMG_AXES.index("RNG source")
    args = {"x_type": rng_axis, "x_values": "CPU, NV", "include_lone_images": True}
    done = _xyz(client, args=args, steps=1)
    infotexts = json.loads(done["info"])["infotexts"]
    assert "RNG: CPU" in infotexts[1] and "RNG: NV" in infotexts[2]
    assert done["images"][1] != done["images"][2] and app.options.randn_source == "CPU"


def test_xyz_hires_axes_vary_the_hires_pass(client):
    args = {
        "x_type": 5,
        "x_values": "1, 2",
        "y_type": 28,
        "y_values": "Latent, Nearest",
        "include_lone_images": True,
    }
    body = _xyz(client, args=args, steps=1, enable_hr=True, hr_scale=1.5)
    infotexts = json.loads(body["info"])["infotexts"][1:]
    assert [("Hires steps: 1" in t, "Hires upscaler: Nearest" in t) for t in infotexts] == [
        (True, False),
        (False, False),
        (True, True),
        (False, True),
    ]  # A1111 writes Hires steps only when not 0; 2 is written as "Hires steps: 2"
    assert all(decode_pixels(image).shape[:2] == (96, 96) for image in body["images"][1:])
    denoise = _xyz(
        client,
        args={"x_type": 25, "x_values": "0.2, 0.9", "include_lone_images": True},
        steps=1,
        enable_hr=True,
    )
    assert [("Denoising strength: 0.2" in t) for t in json.loads(denoise["info"])["infotexts"][1:]] == [
        True,
        False,
    ]


def test_xyz_sampler_parameter_axes_reach_the_sampler_and_the_infotext(client, app):
    args = {"x_type": 13, "x_values": "0, 3", "y_type": 36, "y_values": "False, True"}
    body = _xyz(client, args={**args, "include_lone_images": True}, sampler_name="Euler", steps=3)
    infotexts = json.loads(body["info"])["infotexts"][1:]
    assert [("Sigma churn: 3" in t, "SGM noise multiplier: True" in t) for t in infotexts] == [
        (False, False),
        (True, False),
        (False, True),
        (True, True),
    ]
    churned = _single(client, sampler_name="Euler", steps=3, s_churn=3)
    assert np.array_equal(decode_pixels(body["images"][2]), churned)
    assert not np.array_equal(churned, _single(client, sampler_name="Euler", steps=3))
    assert app.options.sgm_noise_multiplier is False  # the setting axis is restored


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        ({"x_type": 9, "x_values": "Euler, Nope", "csv_mode": True}, 400, "Sampler not found: 'nope'"),
        ({"x_type": 9, "x_values_dropdown": ["Euler", "Nope"]}, 400, "Sampler not found"),
        ({"x_type": 11, "x_values": "no-such-model"}, 400, "Checkpoint not found: 'no-such-model'"),
        ({"x_type": 29, "x_values": "missing.pt"}, 400, "VAE not found: 'missing.pt'"),
        ({"x_type": 30, "x_values": "no style"}, 400, "Style not found: 'no style'"),
        ({"x_type": 36, "x_values": "True, maybe"}, 400, "takes True or False, got 'maybe'"),
        ({"x_type": 28, "x_values": "Latent, R-ESRGAN 9x"}, 400, "upscaler 'R-ESRGAN 9x' not found"),
        ({"x_type": 4, "x_values": "1, two"}, 400, "X axis (Steps): 'two' is not a whole number"),
        ({"x_type": 4, "x_values": "1-500 (+100)"}, 400, "steps must be an integer from 1 to"),
        ({"x_type": 4, "x_values": ""}, 400, "no values given"),
        ({"x_type": 41, "x_values": "64 by 64"}, 400, "is not WIDTHxHEIGHT"),
        ({"x_values": "1-1000", "y_type": 4, "y_values": "1-100"}, 400, "the grid would be too large"),
    ],
)
def test_xyz_bad_values_are_clear_4xx_errors_before_any_image(client, app, args, status, message):
    seen: list[int] = []
    app.callbacks.add("cfg_denoiser", seen.append)
    try:
        body = _xyz(client, status, args=args)
    finally:
        app.callbacks.remove_function(seen.append)
    assert message in body["detail"] and not seen


def test_xyz_stops_at_an_interrupt(client, app):
    calls: list[int] = []

    def interrupt(params):
        calls.append(1)
        app.state.interrupt()

    app.callbacks.add("cfg_denoiser", interrupt)
    try:
        body = _xyz(client, args={"x_type": 4, "x_values": "1, 1, 1", "include_lone_images": True})
    finally:
        app.callbacks.remove_function(interrupt)
    assert len(calls) == 1  # the other cells were never started
    assert len(body["images"]) == 4 and not decode_pixels(body["images"][3]).any()  # a blank cell


def test_prompts_from_file_make_one_job_per_line(client):
    text = 'a dog\n\n--steps 3 --prompt "x y" --seed 7\n--prompt z --negative_prompt "bad, ugly" --cfg_scale 5.5\n'
    body = _post(
        client,
        prompt="",
        script_name="prompts from file or textbox",
        script_args=[False, False, "start", text],
    )
    info = json.loads(body["info"])
    assert info["all_prompts"] == ["a dog", "x y", "z"] and info["all_negative_prompts"] == [
        "",
        "",
        "bad, ugly",
    ]
    assert info["all_seeds"] == [4, 7, 4] and len(body["images"]) == 3
    parsed = [parse_infotext(t) for t in info["infotexts"]]
    assert [p["Steps"] for p in parsed] == ["2", "3", "2"] and parsed[2]["CFG scale"] == "5.5"
    assert np.array_equal(decode_pixels(body["images"][1]), _single(client, prompt="x y", steps=3, seed=7))


def test_prompts_from_file_position_iteration_and_uploaded_file(client):
    upload = base64.b64encode(b"red\nblue\n").decode()
    args = [True, False, "end", "", upload]
    info = json.loads(
        _post(client, prompt="a fox", steps=1, script_name="prompts from file or textbox", script_args=args)[
            "info"
        ]
    )
    assert info["all_prompts"] == ["a fox red", "a fox blue"] and info["all_seeds"] == [4, 5]


def test_prompts_from_file_bad_lines_are_clear_4xx_errors(client):
    args = [False, False, "start", "a cat\n--stepz 3"]
    body = _post(client, 400, script_name="prompts from file or textbox", script_args=args)
    assert "line 2 ('--stepz 3'): unknown option '--stepz'" in body["detail"]
    args = [False, False, "start", "--steps 3 --width 40"]
    assert (
        "width must be an integer from 64"
        in _post(client, 400, script_name="prompts from file or textbox", script_args=args)["detail"]
    )
    args = [False, False, "start", "--sd_model nothing-like-this"]
    assert (
        "Checkpoint not found"
        in _post(client, 400, script_name="prompts from file or textbox", script_args=args)["detail"]
    )


def test_xyz_refiner_axes_switch_to_the_refiner_per_cell(client, app):
    refiner_axis = A1111_TXT2IMG_AXES.index("Refiner checkpoint")
    args = {
        "x_type": refiner_axis,
        "x_values": "None, zz_second",
        "y_type": A1111_TXT2IMG_AXES.index("Refiner switch at"),
        "y_values": "0.3, 0.6",
        "include_lone_images": True,
    }
    infotexts = json.loads(_xyz(client, args=args, steps=4)["info"])["infotexts"]
    assert "Refiner" not in infotexts[1] and "Refiner" not in infotexts[3]
    assert "Refiner: zz_second" in infotexts[2] and "Refiner switch at: 0.3" in infotexts[2]
    assert "Refiner: zz_second" in infotexts[4] and "Refiner switch at: 0.6" in infotexts[4]
    body = _xyz(client, 400, args={"x_type": refiner_axis, "x_values": "no-such-model"})
    assert "Checkpoint not found: 'no-such-model'" in body["detail"]
