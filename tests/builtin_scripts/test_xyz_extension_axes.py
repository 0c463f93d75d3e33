"""X/Y/Z plot axes an extension adds the A1111 way (adetailer, sd-dynamic-thresholding, neutral-prompt): it
finds the built-in script's module in `scripts.scripts_data` by its A1111 name "xyz_grid.py", makes
`AxisOption`s with A1111's signatures (`apply_field`, `choices()`, `confirm(p, xs)`, `prepare(xs)`,
`format_value(p, opt, x)`, a txt2img-only `AxisOptionTxt2Img`) and appends them to `axis_options`, here
when its script file is imported. The plot then lists them after Sumi's axes and runs them, from the API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.xyz_plot import IMG2IMG_AXES, TXT2IMG_AXES
from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/axes.py": """
        from modules import scripts


        def find_xyz():
            for data in scripts.scripts_data:
                if data.script_class.__module__ == "xyz_grid.py" and hasattr(data, "module"):
                    return data.module


        class Steps(int):
            pass


        def confirm_steps(p, xs):
            for x in xs:
                if x > 3:
                    raise RuntimeError(f"at most 3 steps here, got {x}")


        def doubled(xs):
            return [Steps(2 * x) for x in xs]


        def scale_label(p, opt, x):
            return f"guidance {x:g}"


        xyz = find_xyz()
        xyz.axis_options.extend([
            xyz.AxisOption("[Test] CFG", float, xyz.apply_field("cfg_scale"), format_value=scale_label),
            xyz.AxisOptionTxt2Img(
                "[Test] Half steps", Steps, xyz.apply_field("steps"), confirm=confirm_steps, prepare=doubled
            ),
            xyz.AxisOption(
                "[Test] Sampler", str, xyz.apply_field("sampler_name"), choices=lambda: ["Euler", "DPM++ 2M"]
            ),
        ])
    """,
}
BODY = {"steps": 2, "width": 64, "height": 64, "seed": 4, "sampler_name": "Euler", "prompt": "a fox"}
ARGS = ["x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown", "z_type"]
ARGS += ["z_values", "z_values_dropdown", "draw_legend", "include_lone_images", "include_sub_grids"]
ARGS += ["no_fixed_seeds", "vary_seeds_x", "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode"]
DEFAULTS = [1, "", None, 0, "", None, 0, "", None, True, True, False, False, False, False, False, 0, False]


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_files(data / "extensions" / "xyz-axes", EXTENSION)
    return make_module_app(data, "--api", "--nowebui")


def _xyz(client, status: int = 200, **args) -> dict:
    values = [args.get(name, default) for name, default in zip(ARGS, DEFAULTS, strict=True)]
    return post_txt2img(client, {**BODY, "script_name": "X/Y/Z plot", "script_args": values}, status)


def test_the_extensions_axes_come_after_sumis_with_a1111s_indexes(client):
    info = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json() if s["is_img2img"] is False}
    choices = info["x/y/z plot"]["args"][0]["choices"]  # the axes offered, Sumi's first
    offered = [axis.label for axis in TXT2IMG_AXES if axis.supported_on(False)]
    assert choices == [*offered, "[Test] CFG", "[Test] Half steps", "[Test] Sampler"]
    img2img = {s["name"]: s for s in client.get("/sdapi/v1/script-info").json() if s["is_img2img"]}
    offered = [axis.label for axis in IMG2IMG_AXES if axis.supported_on(True)]
    assert img2img["x/y/z plot"]["args"][0]["choices"] == [*offered, "[Test] CFG", "[Test] Sampler"]


def test_an_extension_axis_runs_its_apply_and_labels_cells_with_its_format(client):
    x_type = len(TXT2IMG_AXES)  # "[Test] CFG", by A1111's index as API clients send it
    body = _xyz(client, x_type=x_type, x_values="3, 7")
    cells = [decode_pixels(image) for image in body["images"][1:]]
    for cfg, cell in zip((3, 7), cells, strict=True):
        single = decode_pixels(post_txt2img(client, {**BODY, "cfg_scale": cfg}, 200)["images"][0])
        assert np.array_equal(cell, single)
    grid = parse_infotext(json.loads(body["info"])["infotexts"][0])
    assert grid["X Type"] == "[Test] CFG" and grid["X Values"] == "3, 7"


def test_an_extension_axis_s_type_prepare_confirm_and_choices_are_a1111s(client):
    body = _xyz(client, x_type="[Test] Half steps", x_values="1")  # prepare doubles it: 2 steps
    infotexts = json.loads(body["info"])["infotexts"]
    assert "Steps: 2," in infotexts[1]
    refused = _xyz(client, 400, x_type="[Test] Half steps", x_values="1, 2")  # 4 steps: its confirm says no
    assert "[Test] Half steps" in refused["detail"] and "at most 3 steps here, got 4" in refused["detail"]
    chosen = _xyz(client, x_type="[Test] Sampler", x_values_dropdown=["DPM++ 2M"])
    assert "Sampler: DPM++ 2M," in json.loads(chosen["info"])["infotexts"][1]


def test_legends_use_the_axis_s_a1111_format_function():
    from modules.sumi.services.jobs import xyz_extension_axes as ext
    from modules.sumi.services.jobs.xyz_plot import AxisOption

    custom = ext.A1111AxisOption("[T] CFG", float, ext.apply_field("cfg_scale"), lambda p, o, x: f"g{x:g}")
    assert ext.sumi_axis(custom, AxisOption).legend(3.5) == "g3.5"
    plain = ext.A1111AxisOption("[T] Steps", int, ext.apply_field("steps"))
    assert ext.sumi_axis(plain, AxisOption).legend(0.1 + 0.2) == "[T] Steps: 0.3"  # A1111's rounding
    assert ext.boolean_choice(reverse=True)() == ["False", "True"]
