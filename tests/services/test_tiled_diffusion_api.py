"""Tiled Diffusion through the A1111 API under the extension's script name and args: the job is tiled,
its settings are in the infotext (and paste back), one tile is a plain job, and what is not built is a
400, never ignored."""

from __future__ import annotations

import json

import pytest

from tests.app_support import generate

BODY = {"steps": 2, "width": 128, "height": 96, "seed": 4, "sampler_name": "Euler", "prompt": "a red star"}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("tiled"), "--nowebui")


def _args(method="MultiDiffusion", tile=8, overlap=4, batch=2, **kw) -> list:
    args = [True, method, kw.get("overwrite", False), True, kw.get("width", 1024), kw.get("height", 1024)]
    return args + [tile, tile, overlap, batch, "None", 2.0] + kw.get("later", [])


_REGIONS_ON = [False, 10, 1, 1, 64, False, True, False, False]  # noise inversion off, region control on


def _region(
    enable=True, x=0.0, y=0.0, w=1.0, h=1.0, prompt="", negative="", mode="Background", feather=0.2, seed=-1
):
    return [enable, x, y, w, h, prompt, negative, mode, feather, seed]


def _tiled(client, args: list, status: int = 200, **body):
    r = client.post(
        "/sdapi/v1/txt2img", json={**BODY, **body, "alwayson_scripts": {"Tiled Diffusion": {"args": args}}}
    )
    assert r.status_code == status, r.text
    return r.json()


def test_a_tiled_job_draws_and_writes_its_settings(client):
    plain, _ = generate(client, BODY, BODY["prompt"])
    out = _tiled(client, _args())
    infotext = json.loads(out["info"])["infotexts"][0]
    assert (
        'Tiled Diffusion: {"Method": "MultiDiffusion", "Tile tile width": 8, "Tile tile height": 8, "Tile Overlap": 4, "Tile batch size": 2}'
        in infotext
    )
    import base64
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(out["images"][0])))
    assert image.size == (128, 96) and image.tobytes() != plain


def test_one_tile_is_a_plain_job(client):
    plain, _ = generate(client, BODY, BODY["prompt"])
    import base64
    import io

    from PIL import Image

    out = _tiled(client, _args(tile=64, overlap=0))
    assert Image.open(io.BytesIO(base64.b64decode(out["images"][0]))).tobytes() == plain


def test_mixture_of_diffusers_and_overwritten_size(client):
    out = _tiled(client, _args("Mixture of Diffusers", overwrite=True, width=192, height=64))
    info = json.loads(out["info"])
    assert info["width"] == 192 and info["height"] == 64
    assert '"Method": "Mixture of Diffusers"' in info["infotexts"][0]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (_args("Tiles"), "not one of"),
        (_args(tile=4), "at least 8"),
        (_args(later=[*_REGIONS_ON, *_region(w=0)]), "Region 1 lies outside the canvas"),
        (_args(later=[*_REGIONS_ON, *_region(), *_region(prompt="<lora:x:1>")]), "Region 2: extra networks"),
        (_args(later=[*_REGIONS_ON, *_region(prompt="a AND b")]), "cannot use AND"),
        (_args(later=[*_REGIONS_ON, *_region(mode="Middle")]), "type 'Middle' is not one of"),
        (_args(later=[*_REGIONS_ON, *_region(seed="soon")]), "seed must be a whole number"),
        (_args(later=[*_REGIONS_ON, *_region(seed=2**70)]), "seed must be -1 (random) or from 0"),
        (_args(later=[*_REGIONS_ON, *_region(x="nan")]), "x must be from 0 to 1"),
    ],
)
def test_what_cannot_be_done_is_a_400(client, args, reason):
    out = _tiled(client, args, 400)
    assert reason in json.dumps(out)


def test_the_settings_paste_back_from_the_infotext():
    from modules.sumi.builtin_scripts.tilediffusion import _from_infotext
    from modules.sumi.services.jobs.infotext import parse_infotext

    out = parse_infotext(
        'a star\nSteps: 2, Tiled Diffusion: {"Method": "Mixture of Diffusers", "Tile tile width": 64, "Tile Overlap": 16}, Seed: 3'
    )
    assert _from_infotext("Method", "")(out) == "Mixture of Diffusers"
    assert _from_infotext("Tile tile width", 96)(out) == 64 and _from_infotext("Tile batch size", 4)(out) == 4
    assert out["Seed"] == "3"


def test_a_tiled_hires_job_tiles_both_passes(client):
    out = _tiled(
        client,
        _args(tile=8, overlap=4),
        width=64,
        height=64,
        enable_hr=True,
        hr_scale=2,
        hr_upscaler="Latent",
        denoising_strength=0.5,
    )
    infotext = json.loads(out["info"])["infotexts"][0]
    assert "Tiled Diffusion: " in infotext and "Hires upscale: 2" in infotext
    from tests.app_support import decode_pixels

    assert decode_pixels(out["images"][0]).shape[:2] == (128, 128)


def test_a_tiled_job_follows_the_demo_controlnet_across_its_tiles(app, client):
    """The demo's canny ControlNet on 2x2 overlapping tiles (96 of its 128 pixels each): the red circle is
    drawn where the picture's blue one is (the residuals reach every tile where they belong)."""
    from pathlib import Path

    from modules.sumi.services.models.demo import DEMO_CONTROLNET_NAME
    from tests.app_support import decode_pixels, encode_png
    from tools.demo_model.measures import colour_centre
    from tools.demo_model.scenes import POSITIONS, Scene, render

    distances = {}
    for label, units in (("with", True), ("without", False)):
        picture = render(Scene("blue", "circle", "left", "large", "yellow"))
        unit = {
            "enabled": True,
            "module": "canny",
            "model": Path(DEMO_CONTROLNET_NAME).stem,
            "image": encode_png(picture),
        }
        body = {
            **BODY,
            "prompt": "a red circle, white background",
            "width": 128,
            "height": 128,
            "steps": 20,
            "sampler_name": "Euler a",
            "seed": 1,
        }
        body["alwayson_scripts"] = {
            "Tiled Diffusion": {"args": _args(tile=12, overlap=8, batch=4)},
            "controlnet": {"args": [unit] if units else []},
        }
        r = client.post("/sdapi/v1/txt2img", json=body)
        assert r.status_code == 200, r.text
        from PIL import Image

        centre = colour_centre(Image.fromarray(decode_pixels(r.json()["images"][0])), "red")
        fx, fy = POSITIONS["left"]
        distances[label] = (
            128.0 if centre is None else ((centre[0] - fx * 128) ** 2 + (centre[1] - fy * 128) ** 2) ** 0.5
        )
    # measured: 1.5 px from the circle's place with the ControlNet, nothing red drawn without it
    assert distances["with"] < 8 and distances["with"] < distances["without"], distances


def test_regions_draw_with_their_seeds_written_in_the_infotext(client):
    regions = [
        *_region(w=0.5, prompt="a blue circle", seed=-1),
        *_region(False),
        *_region(x=0.5, w=0.5, mode="Foreground", seed=7),
    ]
    out = _tiled(client, _args(later=[*_REGIONS_ON, *regions]))
    from modules.sumi.services.jobs.infotext import parse_infotext

    written = json.loads(parse_infotext(json.loads(out["info"])["infotexts"][0])["Tiled Diffusion"])
    control = written["Region control"]
    assert list(control) == ["Region 1", "Region 3"]  # region 2 is off
    assert control["Region 1"]["prompt"] == "a blue circle" and control["Region 1"]["seed"] >= 0
    assert control["Region 3"] == {
        "enable": True, "x": 0.5, "y": 0.0, "w": 0.5, "h": 1.0, "prompt": "", "neg_prompt": "",
        "blend_mode": "Foreground", "feather_ratio": 0.2, "seed": 7,
    }  # fmt: skip
    assert written["Draw background"] is False


def test_one_region_over_the_canvas_with_the_jobs_seed_is_the_plain_job(client):
    plain, _ = generate(client, BODY, BODY["prompt"])
    import base64
    import io

    from PIL import Image

    out = _tiled(client, _args(later=[*_REGIONS_ON, *_region(seed=BODY["seed"])]))
    assert Image.open(io.BytesIO(base64.b64decode(out["images"][0]))).tobytes() == plain
    other = _tiled(
        client, _args(later=[*_REGIONS_ON, *_region(seed=BODY["seed"], prompt="green background")])
    )
    assert Image.open(io.BytesIO(base64.b64decode(other["images"][0]))).tobytes() != plain


def test_region_control_on_with_no_region_enabled_is_plain_tiling(client):
    tiled = _tiled(client, _args())
    empty = _tiled(client, _args(later=[*_REGIONS_ON, *_region(False)]))
    assert tiled["images"] == empty["images"]
    assert "Region control" not in json.loads(empty["info"])["infotexts"][0]


def test_the_regions_paste_back_from_the_infotext():
    from modules.sumi.builtin_scripts.tilediffusion import _region_control, _region_field
    from modules.sumi.services.jobs.infotext import parse_infotext

    out = parse_infotext(
        'a star\nSteps: 2, Tiled Diffusion: {"Method": "MultiDiffusion", "Region control": {"Region 2": '
        '{"enable": true, "x": 0.5, "prompt": "a cat, hat", "seed": 9}}, "Draw background": true}, Seed: 3'
    )
    assert _region_control(out) is not None
    assert _region_field(2, 0)(out) is True and _region_field(2, 1)(out) == 0.5
    assert _region_field(2, 5)(out) == "a cat, hat" and _region_field(2, 9)(out) == 9
    assert _region_field(2, 3)(out) == 0.2  # not written: the default
    assert _region_field(1, 0)(out) is False  # region 1 was off


def _inversion(on=True, steps=10, retouch=1.0, strength=0.0, kernel=64) -> list:
    return [on, steps, retouch, strength, kernel]


def _redraw(client, picture: str, args: list, status: int = 200, **body):
    r = client.post(
        "/sdapi/v1/img2img",
        json={
            "init_images": [picture], "prompt": "", "steps": 12, "width": 128, "height": 128, "seed": 5,
            "sampler_name": "Euler a", "denoising_strength": 1.0,
            "alwayson_scripts": {"Tiled Diffusion": {"args": args}}, **body,
        },
    )  # fmt: skip
    assert r.status_code == status, r.text
    return r.json()


@pytest.fixture(scope="module")
def picture(client):
    body = {**BODY, "prompt": "a yellow square on the right, green background", "width": 128, "height": 128}
    return client.post("/sdapi/v1/txt2img", json={**body, "steps": 12, "seed": 1}).json()["images"][0]


def test_noise_inversion_keeps_the_picture_where_random_noise_redraws_it(client, picture):
    """Redrawn in full with an empty prompt, the picture comes back from its inverted noise (the demo
    model's yellow square), where random noise draws something else."""
    from tests.app_support import decode_pixels

    original = decode_pixels(picture).astype(float)
    plain = _redraw(client, picture, _args(tile=16, overlap=8))
    inverted = _redraw(client, picture, _args(tile=16, overlap=8, later=_inversion()))
    error = {
        name: ((decode_pixels(out["images"][0]) - original) ** 2).mean()
        for name, out in (("plain", plain), ("inverted", inverted))
    }
    assert error["inverted"] < error["plain"] / 4, error
    info = json.loads(inverted["info"])
    assert info["sampler_name"] == "Euler"  # the inversion's sampler, as the extension switches to it
    assert '"NoiseInv": true, "NoiseInv Steps": 10, "NoiseInv Retouch": 1.0' in info["infotexts"][0]


def test_the_inversion_is_reused_for_the_same_picture_and_redone_for_another_retouch(client, picture, caplog):
    def reused() -> int:
        return sum("reusing its noise" in r.getMessage() for r in caplog.records)

    caplog.set_level("INFO", logger="modules.sumi.engine.noise_inversion")
    first = _redraw(client, picture, _args(tile=16, overlap=8, later=_inversion(strength=1.0)))
    before = reused()
    again = _redraw(client, picture, _args(tile=16, overlap=8, later=_inversion(strength=1.0)))
    assert reused() == before + 1 and again["images"] == first["images"]
    other = _redraw(client, picture, _args(tile=16, overlap=8, later=_inversion(retouch=2.0, strength=1.0)))
    assert reused() == before + 1 and other["images"] != first["images"]


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (_inversion(steps=0), "inversion steps must be a whole number from 1 to 200"),
        (_inversion(retouch=0.5), "retouch must be from 1 to 100"),
        (_inversion(strength=3), "renoise strength must be from 0 to 2"),
    ],
)
def test_noise_inversion_settings_out_of_range_are_a_400(client, picture, later, reason):
    out = _redraw(client, picture, _args(tile=16, overlap=8, later=later), 400)
    assert reason in json.dumps(out)


def test_noise_inversion_in_txt2img_is_a_400(client):
    out = _tiled(client, _args(later=_inversion()), 400)
    assert "Noise Inversion redraws an img2img picture" in json.dumps(out)


def test_noise_inversion_runs_with_regions_and_a_tiled_grid(client, picture):
    regions = [
        True,
        False,
        False,
        *_region(w=0.5, prompt="green background"),
        *_region(x=0.5, w=0.5, mode="Foreground"),
    ]
    out = _redraw(
        client, picture, _args(tile=8, overlap=4, later=[*_inversion(strength=0.5), False, *regions])
    )
    info = json.loads(out["info"])["infotexts"][0]
    assert '"NoiseInv Renoise strength": 0.5' in info and '"Region 2": {"enable": true, "x": 0.5' in info


def test_the_upscale_recipe_upscaler_then_noise_inversion_then_tiles_doubles_the_picture(client, picture):
    from tests.app_support import decode_pixels

    args = [
        True,
        "Mixture of Diffusers",
        False,
        True,
        1024,
        1024,
        16,
        16,
        8,
        4,
        "Lanczos",
        2.0,
        *_inversion(),
    ]
    out = _redraw(client, picture, args, denoising_strength=0.4)
    assert decode_pixels(out["images"][0]).shape[:2] == (256, 256)
    info = json.loads(out["info"])["infotexts"][0]
    assert '"Upscaler": "Lanczos", "Upscale factor": 2.0' in info and '"NoiseInv": true' in info


def test_regions_beyond_the_eight_the_script_has_are_named_as_ignored(client):
    out = _tiled(client, _args(later=[*_REGIONS_ON, *(_region(w=0.5) * 9)]))
    warnings = json.loads(out["info"])["warnings"]
    assert any(
        "Tiled Diffusion: the script takes 101 args; the 10 after them were ignored" in w for w in warnings
    )


def test_more_than_sixteen_enabled_regions_are_refused_by_the_reader():
    from modules.sumi.builtin_scripts.support.tiled_regions import read_regions
    from modules.sumi.engine.errors import InvalidRequestError

    assert len(read_regions(_region() * 16, "T")) == 16
    with pytest.raises(InvalidRequestError, match="at most 16 regions"):
        read_regions(_region() * 17, "T")


def test_region_configs_save_the_enabled_regions_and_load_them_in_order(tmp_path):
    from modules.sumi.builtin_scripts.support.tiled_regions import DEFAULT, load_config, save_config

    groups = [
        *_region(w=0.5, prompt="a cat"),
        *_region(False),
        *_region(x=0.5, w=0.5, mode="Foreground", seed=7),
    ]
    assert save_config(tmp_path, "mine", groups) == "Saved 2 region(s) to mine.json"
    saved = json.loads((tmp_path / "mine.json").read_text(encoding="utf-8"))["bbox_controls"]
    assert [r["prompt"] for r in saved] == ["a cat", ""] and saved[1]["blend_mode"] == "Foreground"
    values, message = load_config([tmp_path / "absent", tmp_path], "mine.json")
    assert message.startswith("Loaded 2 region(s) from") and len(values) == 80
    assert values[:10] == _region(w=0.5, prompt="a cat") and values[10:20] == _region(
        x=0.5, w=0.5, mode="Foreground", seed=7
    )
    assert values[20:30] == list(DEFAULT)


def test_a_config_saved_by_the_extension_loads_and_bad_ones_say_why(tmp_path):
    from modules.sumi.builtin_scripts.support.tiled_regions import load_config, save_config

    extension_file = {"bbox_controls": [{"enable": True, "x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "prompt": "sky",
                                         "neg_prompt": "", "blend_mode": "Background", "feather_ratio": 0.2, "seed": -1}]}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(extension_file), encoding="utf-8")
    values, _ = load_config([tmp_path], "config.json")
    assert values[:6] == [True, 0.1, 0.2, 0.3, 0.4, "sky"]
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    for name, reason in (
        ("broken.json", "is not a region config"),
        ("nothing.json", "no region config"),
        ("../up", "not a plain file name"),
    ):
        with pytest.raises(ValueError, match=reason):
            load_config([tmp_path], name)
    with pytest.raises(ValueError, match="not a plain file name"):
        save_config(tmp_path, "../escape", _region())


def test_the_canvas_picture_carries_each_regions_own_box_for_dragging():
    from modules.sumi.builtin_scripts.support.tiled_regions import preview_svg

    svg = preview_svg([*_region(False), *_region(x=0.75, w=0.5, prompt="a <cat>")], 1024, 512)
    assert svg.count('class="md-region"') == 1  # disabled regions are not drawn
    assert 'data-region="1" data-x="0.7500" data-y="0.0000" data-w="0.5000" data-h="1.0000"' in svg
    assert 'width="120.0"' in svg  # clipped to the canvas; the data keeps the region's own width
    assert "a &lt;cat&gt;" in svg and 'pointer-events="none"' in svg
