"""A1111's built-in img2img scripts (Loopback, Outpainting mk2, Poor man's outpainting, SD upscale) and the
img2img axes of X/Y/Z plot: their geometry and fills as functions, and whole runs on the tiny demo model
through POST /sdapi/v1/img2img with A1111's `script_name` and `script_args`."""

from __future__ import annotations

import base64
import io
import json
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from modules.sumi.builtin_scripts import loopback, outpainting_mk_2, poor_mans_outpainting, sd_upscale
from modules.sumi.builtin_scripts.support.img2img import Sides, directions, expansion
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.grids import split_grid
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from modules.sumi.services.jobs.xyz_controlnet import CONTROLNET_AXES
from modules.sumi.services.jobs.xyz_plot import IMG2IMG_AXES, TXT2IMG_AXES, find_axis
from tests.app_support import decode_pixels
from tests.fixtures.tiny_captioners import write_deepdanbooru

A1111_IMG2IMG_AXES = [  # v1.10.1 scripts/xyz_grid.py, img2img tab
    "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale", "Image CFG Scale", "Prompt S/R",
    "Prompt order", "Sampler", "Checkpoint name", "Negative Guidance minimum sigma", "Sigma Churn",
    "Sigma min", "Sigma max", "Sigma noise", "Schedule type", "Schedule min sigma", "Schedule max sigma",
    "Schedule rho", "Beta schedule alpha", "Beta schedule beta", "Eta", "Clip skip", "Denoising",
    "Initial noise multiplier", "Extra noise", "Cond. Image Mask Weight", "VAE", "Styles", "UniPC Order",
    "Face restore", "Token merging ratio", "Token merging ratio high-res", "Always discard next-to-last sigma",
    "SGM noise multiplier", "Refiner checkpoint", "Refiner switch at", "RNG source", "FP8 mode", "Size",
]  # fmt: skip


def _picture(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """A picture with structure: a gradient, a block and some noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=2)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (200, 40, 90)
    pixels = np.clip(pixels + rng.integers(-10, 10, pixels.shape), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


# --- Loopback: the strength curve ---------------------------------------------------------------------


def test_loopback_strength_moves_from_the_jobs_own_to_the_final_along_the_curve():
    linear = loopback.strengths(0.75, 0.25, 5, "Linear")
    assert linear == pytest.approx([0.75, 0.625, 0.5, 0.375, 0.25])
    aggressive = loopback.strengths(0.75, 0.25, 5, "Aggressive")
    lazy = loopback.strengths(0.75, 0.25, 5, "Lazy")
    for curve in (aggressive, lazy):
        assert curve[0] == 0.75 and curve[-1] == pytest.approx(0.25)
        assert all(a >= b for a, b in zip(curve, curve[1:], strict=False))
    assert all(a < lin < lz for a, lin, lz in zip(aggressive[1:-1], linear[1:-1], lazy[1:-1], strict=True))
    assert loopback.strengths(0.6, 0.1, 1, "Lazy") == [0.6]
    assert loopback.strengths(0.2, 0.8, 3) == pytest.approx([0.2, 0.5, 0.8])


# --- outpainting geometry ------------------------------------------------------------------------------


def test_outpainting_grows_each_chosen_side_to_a_multiple_of_64():
    assert expansion(64, 64, 128, ["left", "right", "up", "down"]) == Sides(128, 128, 128, 128)
    assert expansion(64, 64, 32, ["left"]) == Sides(64, 0, 0, 0)  # 96 rounds up to 128
    assert expansion(100, 60, 8, ["left", "right", "down"]) == Sides(14, 14, 0, 68)  # 68 = 128 - 60
    sides = expansion(100, 70, 40, ["left", "right", "up", "down"])
    assert (100 + sides.left + sides.right) % 64 == 0 and (70 + sides.up + sides.down) % 64 == 0
    assert directions("left, UP", "t") == ["left", "up"]
    with pytest.raises(InvalidRequestError, match="unknown outpainting direction 'north'"):
        directions(["left", "north"], "t")
    with pytest.raises(InvalidRequestError, match="at least one"):
        directions([], "t")


def test_noise_matched_fill_keeps_the_picture_and_fills_with_its_colours():
    image = np.asarray(_picture(64, 48), dtype=np.float64) / 255.0
    mask = np.zeros((48, 64))
    mask[:, 40:] = 1.0
    filled = outpainting_mk_2.matched_noise(image, mask, noise_q=1.0, color_variation=0.05)
    assert filled.shape == image.shape and np.array_equal(filled[:, :40], image[:, :40])
    assert np.array_equal(filled, outpainting_mk_2.matched_noise(image, mask, 1.0, 0.05))  # deterministic
    region, reference = filled[:, 40:].reshape(-1, 3), image[:, :40].reshape(-1, 3)
    assert region.std() > 0.01  # noise, not a flat colour
    for c in range(3):  # the fill has the kept part's histogram
        assert np.quantile(region[:, c], [0.1, 0.5, 0.9]) == pytest.approx(
            np.quantile(reference[:, c], [0.1, 0.5, 0.9]), abs=0.03
        )
    black = outpainting_mk_2.matched_noise(np.zeros((16, 16, 3)), mask[:16, :16] * 0 + 1, 1.0, 0.5)
    assert np.isfinite(black).all()


def test_outpainting_mk2_step_redraws_the_strip_beside_the_grown_side():
    picture = _picture(64, 64)
    step = outpainting_mk_2.plan_step(picture, "left", 64, 8, (128, 128), (1.0, 0.05))
    assert step.canvas.size == (128, 64) and step.size == (128, 64) and step.strip == (0, 0, 128, 64)
    mask = np.asarray(step.mask)
    assert (mask[:, : 64 + 8] == 255).all() and (mask[:, 64 + 8 :] == 0).all()
    assert np.array_equal(
        np.asarray(step.canvas)[:, 64 + 8 :], np.asarray(picture)[:, 8:]
    )  # the seam is filled too
    latent = np.asarray(step.latent_mask)
    assert (latent[:, : 64 + 16] == 255).all() and (latent[:, 64 + 16 :] == 0).all()
    down = outpainting_mk_2.plan_step(picture, "down", 64, 0, (64, 64), (1.0, 0.05))
    assert down.strip == (0, 64, 64, 128)  # limited to the job's height, at the bottom
    grown = outpainting_mk_2.finish_step(down, Image.new("RGB", (64, 64), (1, 2, 3)))
    assert grown.size == (64, 128) and grown.getpixel((5, 100)) == (1, 2, 3)
    assert np.array_equal(np.asarray(grown)[:64], np.asarray(picture))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(8, 80),
    st.integers(8, 80),
    st.sampled_from(["left", "right", "up", "down"]),
    st.integers(1, 96),
    st.integers(0, 64),
    st.integers(1, 16),
)
def test_every_outpainting_step_fits_the_job_and_keeps_the_old_picture(
    width, height, side, pixels, blur, limit
):
    picture = _picture(width, height)
    step = outpainting_mk_2.plan_step(picture, side, pixels, blur, (limit * 8, limit * 8), (1.0, 0.05))
    x0, y0, x1, y1 = step.strip
    assert 0 <= x0 < x1 <= step.canvas.width and 0 <= y0 < y1 <= step.canvas.height
    assert (
        (x1 - x0) % 8 == 0
        and (y1 - y0) % 8 == 0
        and step.mask.size == step.latent_mask.size == (x1 - x0, y1 - y0)
    )
    grown = outpainting_mk_2.finish_step(step, step.canvas.crop(step.strip))
    horizontal = side in ("left", "right")
    assert grown.size == (width + pixels * horizontal, height + pixels * (not horizontal))
    at = (pixels if side == "left" else 0, pixels if side == "up" else 0)
    kept = _pixels(grown)[at[1] : at[1] + height, at[0] : at[0] + width]
    inner = slice(blur + 1, -blur - 1) if blur + 1 < min(width, height) // 2 else slice(0, 0)
    assert np.array_equal(kept[inner, inner], _pixels(picture)[inner, inner])


def test_poor_mans_outpainting_redraws_only_tiles_that_reach_the_new_part():
    sides = expansion(64, 64, 32, ["right"])
    canvas, mask, latent = poor_mans_outpainting.canvas_and_masks(_picture(), sides, 4)
    assert canvas.size == (128, 64) and np.array_equal(np.asarray(canvas)[:, :64], np.asarray(_picture()))
    # PIL's rectangles include their last pixel, as in A1111: the kept part ends at x = 64 - 2 * blur
    assert (np.asarray(mask)[:, : 64 - 8 + 1] == 0).all() and (np.asarray(mask)[:, 64 - 8 + 1 :] == 255).all()
    assert (np.asarray(latent)[:, : 64 - 2 + 1] == 0).all() and (
        np.asarray(latent)[:, 64 - 2 + 1 :] == 255
    ).all()
    grid = split_grid(canvas, 64, 64, 32)
    assert len(grid.tiles[0][2]) == 3  # x = 0, 32, 64
    assert poor_mans_outpainting.tiles_to_redraw(grid, sides) == [(0, 1), (0, 2)]
    assert poor_mans_outpainting.masked_content("latent noise") == 2
    assert poor_mans_outpainting.masked_content(1) == 1
    with pytest.raises(InvalidRequestError, match="Masked content must be one of"):
        poor_mans_outpainting.masked_content("blur")


# --- SD upscale -----------------------------------------------------------------------------------------


def test_sd_upscale_always_offers_none_lanczos_and_nearest():
    choices = sd_upscale.upscalers()
    assert [data.name for data in choices][:3] == ["None", "Lanczos", "Nearest"]
    nearest = sd_upscale.find_upscaler(2, choices)
    assert sd_upscale.find_upscaler("lanczos", choices).name == "Lanczos" and nearest.name == "Nearest"
    picture = _picture(64, 40)
    doubled = sd_upscale.upscaled(picture, nearest, 2.0)
    assert doubled.size == (128, 80)
    assert np.array_equal(np.asarray(doubled)[::2, ::2], np.asarray(picture))  # nearest: copies pixels
    assert sd_upscale.upscaled(picture, choices[1], 1.5).size == (96, 56)  # A1111: down to a multiple of 8
    assert sd_upscale.upscaled(picture, choices[0], 3.0) is picture
    with pytest.raises(InvalidRequestError, match="upscaler 'ESRGAN_4x' not found"):
        sd_upscale.find_upscaler("ESRGAN_4x", choices)
    with pytest.raises(InvalidRequestError, match="Upscaler must be a whole number from 0 to 2"):
        sd_upscale.find_upscaler(7, choices)
    for size, tile, overlap in (((128, 128), 64, 16), ((200, 96), 64, 32), ((64, 64), 64, 0)):
        assert sd_upscale.tile_count(*size, tile, tile, overlap) == sum(
            len(row) for _y, _h, row in split_grid(Image.new("RGB", size), tile, tile, overlap).tiles
        )


# --- X/Y/Z plot's img2img axes ---------------------------------------------------------------------------


def test_xyz_img2img_tab_has_a1111s_axis_list_with_its_img2img_axes():
    controlnet = [axis.label for axis in CONTROLNET_AXES]  # sd-webui-controlnet appends its axes
    assert [axis.label for axis in IMG2IMG_AXES] == A1111_IMG2IMG_AXES + controlnet
    assert "Image CFG Scale" not in [axis.label for axis in TXT2IMG_AXES]
    denoising = find_axis(24, is_img2img=True)
    assert denoising.label == "Denoising" and find_axis(6, is_img2img=True).label == "Image CFG Scale"
    assert find_axis(25, is_img2img=True).label == "Initial noise multiplier"
    assert find_axis("denoising", is_img2img=True) is denoising
    p = StableDiffusionProcessingImg2Img()
    for index, field, value in (
        (24, "denoising_strength", 0.3),
        (6, "image_cfg_scale", 1.25),
        (25, "initial_noise_multiplier", 0.9),
    ):
        apply = find_axis(index, is_img2img=True).apply
        assert apply is not None
        apply(p, value, [value])
        assert getattr(p, field) == value
    assert find_axis("Denoising").label == "Denoising"  # txt2img: the hires pass's denoising strength
    mask_weight = find_axis(27, is_img2img=True)
    assert mask_weight.label == "Cond. Image Mask Weight" and mask_weight.apply is not None
    mask_weight.apply(p, 0.4, [0.4])
    assert p.override_settings["inpainting_mask_weight"] == 0.4


# --- the scripts in the img2img runner ---------------------------------------------------------------


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("img2img_scripts") / "data", "--nowebui")
    app.queue.run("wait for the first load", lambda: None)
    return app


@pytest.fixture(scope="module")
def runner(app, client):
    """The img2img tab's runner, laid out as the API lays it out (inside a throwaway page)."""
    assert client.get("/sdapi/v1/scripts").status_code == 200
    return app.scripts.img2img


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class Result(NamedTuple):
    images: list[np.ndarray]
    info: dict
    params: list[dict]  # each image's parsed infotext


def _post(client, script: str | None, args: list, status: int = 200, **body) -> Any:
    """POST /sdapi/v1/img2img as an A1111 client does, with `script_name` and `script_args`."""
    request = {"prompt": "a fox", "steps": 2, "width": 64, "height": 64, "seed": 4, "sampler_name": "Euler"}
    request.update(body)
    request["init_images"] = [_b64(image) for image in request.get("init_images", [_picture()])]
    if script is not None:
        request.update(script_name=script, script_args=args)
    response = client.post("/sdapi/v1/img2img", json=request)
    assert response.status_code == status, response.text
    if status != 200:
        return response.json()
    data = response.json()
    info = json.loads(data["info"])
    return Result(
        [decode_pixels(image) for image in data["images"]],
        info,
        [parse_infotext(t) for t in info["infotexts"]],
    )


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _count_jobs(app):
    """Counts the img2img jobs that start (the first denoiser call of each batch)."""
    jobs: list[int] = []

    def seen(params):
        if params.sampling_step == 0:
            jobs.append(1)

    app.callbacks.add("cfg_denoiser", seen)
    return jobs, seen


def test_the_img2img_scripts_are_listed_on_the_img2img_tab_only(client, app, runner):
    assert not [error for error in app.scripts.errors.items if "builtin_scripts" in error.script]
    names = client.get("/sdapi/v1/scripts").json()
    ours = ["loopback", "outpainting mk2", "poor man's outpainting", "sd upscale"]
    assert set(ours) <= set(names["img2img"]) and "x/y/z plot" in names["img2img"]
    assert not set(ours) & set(names["txt2img"])
    info = {(s["name"], s["is_img2img"]): s for s in client.get("/sdapi/v1/script-info").json()}
    assert [a["value"] for a in info["loopback", True]["args"]] == [4, 0.5, "Linear", "None"]
    assert [a["value"] for a in info["outpainting mk2", True]["args"]][1:] == [
        128,
        8,
        ["left", "right", "up", "down"],
        1.0,
        0.05,
    ]
    assert [a["value"] for a in info["poor man's outpainting", True]["args"]] == [
        128,
        4,
        "fill",
        ["left", "right", "up", "down"],
    ]
    assert [a["value"] for a in info["sd upscale", True]["args"]][1:] == [64, "None", 2.0]
    scripts = {s.title(): s for s in runner.selectable_scripts}
    assert scripts["Loopback"].controls[0].elem_id == "script_loopback_loops"
    assert scripts["Outpainting mk2"].controls[4].elem_id == "script_outpainting_mk2_noise_q"
    assert (
        scripts["Poor man's outpainting"].controls[0].elem_id == "img2img_script_poor_mans_outpainting_pixels"
    )
    upscaler = scripts["SD upscale"].controls[2]
    assert upscaler.elem_id == "script_sd_upscale_upscaler_index"
    assert [name for name, _ in upscaler.choices][:3] == ["None", "Lanczos", "Nearest"]
    offered = [label for label, _ in scripts["X/Y/Z plot"].controls[0].choices]
    assert "Denoising" in offered and "Image CFG Scale" in offered and "Hires steps" not in offered


def test_loopback_runs_each_loop_on_the_last_picture_with_the_strength_curve(client, app):
    jobs, seen = _count_jobs(app)
    try:
        result = _post(client, "Loopback", [3, 0.25, "Linear", "None"], denoising_strength=0.75)
    finally:
        app.callbacks.remove_function(seen)
    assert len(jobs) == 3
    assert len(result.images) == 4 and result.info["index_of_first_image"] == 1  # the grid, then 3 loops
    assert result.images[0].shape[:2] == (64, 3 * 64)
    loops = result.params[1:]
    assert [float(info["Denoising strength"]) for info in loops] == pytest.approx([0.75, 0.5, 0.25])
    assert [info["Seed"] for info in loops] == ["4", "5", "6"]
    assert loops[0]["Final denoising strength"] == "0.25" and loops[0]["Denoising curve"] == "Linear"
    # each loop starts from the picture before it: the second loop alone gives the same picture
    again = _post(
        client, None, [], init_images=[Image.fromarray(result.images[1])], denoising_strength=0.5, seed=5
    )
    # equal but for rounding (a one-level step in a few pixels); a different start differs everywhere
    assert np.abs(again.images[0].astype(int) - result.images[2]).max() <= 1


def test_loopback_with_batch_count_restarts_from_the_init_image(client):
    result = _post(client, "Loopback", [2, 0.5, "Lazy", "None"], n_iter=2, steps=1)
    assert len(result.images) == 3  # the grid and the last picture of each run
    assert [info["Seed"] for info in result.params[1:]] == ["5", "7"]  # runs use seeds 4, 5 and 6, 7
    assert [info["Denoising curve"] for info in result.params[1:]] == ["Lazy", "Lazy"]
    assert not np.array_equal(result.images[1], result.images[2])


def test_loopback_appends_the_interrogated_prompt_at_each_loop(client, app):
    body = _post(client, "Loopback", [2, 0.5, "Linear", "CLIP"], status=400)
    assert str(app.paths.models_dir / "BLIP") in body["detail"]  # no captioning model: where it goes
    tags = ["red_hair", "smile", "rating:safe", "blurry"]
    model = app.paths.models_dir / "torch_deepdanbooru" / "model-resnet_custom_v3.pt"
    write_deepdanbooru(model, tags, logits=[3.0, 2.0, 5.0, -4.0])
    try:
        result = _post(client, "Loopback", [2, 0.5, "Linear", "DeepBooru"], steps=1)
    finally:
        model.unlink()
    assert [info["Prompt"] for info in result.params[1:]] == ["a fox, red hair, smile"] * 2
    body = _post(client, "Loopback", [2, 0.5, "Steep", "None"], status=400)
    assert "curve must be one of" in body["detail"]
    body = _post(client, "Loopback", [2, 0.5, "Linear", "BLIP-2"], status=400)
    assert "None, CLIP, DeepBooru" in body["detail"]


def test_outpainting_mk2_grows_the_picture_and_keeps_the_original(client):
    picture = _picture()
    args = [None, 32, 0, ["left", "down"], 1.0, 0.05]
    result = _post(client, "Outpainting mk2", args, width=128, height=128, init_images=[picture])
    assert len(result.images) == 1
    grown = result.images[0]
    assert grown.shape[:2] == (128, 128)  # 64 + 32 on each chosen side, rounded up to 64
    assert np.array_equal(grown[:64, 64:], _pixels(picture))  # the original, at the top right
    assert grown[64:, :64].std() > 1  # the new corner was drawn
    assert result.params[0]["Denoising strength"] == "0.75"
    body = _post(client, "Outpainting mk2", [None, 32, 0, ["north"], 1.0, 0.05], status=400)
    assert "unknown outpainting direction 'north'" in body["detail"]


def test_poor_mans_outpainting_grows_the_picture_and_keeps_the_original(client, app):
    picture = _picture()
    jobs, seen = _count_jobs(app)
    try:
        result = _post(client, "Poor man's outpainting", [16, 0, 1, ["right"]], init_images=[picture])
    finally:
        app.callbacks.remove_function(seen)
    grown = result.images[0]
    assert len(result.images) == 1 and grown.shape[:2] == (64, 128)
    assert np.array_equal(grown[:, :64], _pixels(picture))  # kept by the mask and the overlay
    assert grown[:, 64:].std() > 1  # the new part was drawn
    assert len(jobs) == 2  # tiles at x = 32 and 64; the one at 0 lies inside the original
    body = _post(client, "Poor man's outpainting", [64, 4, 0, ["left"]], status=400)
    assert "must be larger than Pixels to expand" in body["detail"]


def test_sd_upscale_output_size_and_tile_count(client, app):
    jobs, seen = _count_jobs(app)
    try:
        result = _post(client, "SD upscale", [None, 16, 2, 2.0], denoising_strength=0.5)
    finally:
        app.callbacks.remove_function(seen)
    assert len(result.images) == 1 and result.images[0].shape[:2] == (128, 128)
    assert len(jobs) == sd_upscale.tile_count(128, 128, 64, 64, 16) == 9
    assert (
        result.params[0]["SD upscale overlap"] == "16"
        and result.params[0]["SD upscale upscaler"] == "Nearest"
    )
    batched = _post(client, "SD upscale", [None, 0, "Lanczos", 1.0], batch_size=2, n_iter=2)
    assert [image.shape[:2] for image in batched.images] == [(64, 64), (64, 64)]
    body = _post(client, "SD upscale", [None, 64, 0, 2.0], status=400)
    assert "Tile overlap (64) must be smaller" in body["detail"]


def test_xyz_img2img_axes_change_the_parameter(client):
    args = [
        24,
        "0.25, 0.75",
        None,
        0,
        "",
        None,
        0,
        "",
        None,
        True,
        True,
        False,
        False,
        False,
        False,
        False,
        0,
        False,
    ]
    result = _post(client, "X/Y/Z plot", args)
    assert len(result.images) == 3  # the grid and the two cells
    assert result.params[0]["X Type"] == "Denoising"
    assert [info["Denoising strength"] for info in result.params[1:]] == ["0.25", "0.75"]
    for strength, cell in zip((0.25, 0.75), result.images[1:], strict=True):
        assert np.array_equal(cell, _post(client, None, [], denoising_strength=strength).images[0])
    assert not np.array_equal(result.images[1], result.images[2])
    args[0], args[1] = 25, "0.5, 1"  # Initial noise multiplier
    noise = _post(client, "X/Y/Z plot", args)
    assert noise.params[0]["X Type"] == "Initial noise multiplier"
    assert not np.array_equal(noise.images[1], noise.images[2])
    args[0], args[1] = "Image CFG Scale", "1, 2"
    assert _post(client, "X/Y/Z plot", args).params[0]["X Type"] == "Image CFG Scale"
    args[0] = 5  # CFG Scale on img2img (Hires steps on txt2img)
    assert _post(client, "X/Y/Z plot", args).params[0]["X Type"] == "CFG Scale"


def test_pictures_the_scripts_assemble_are_saved_in_the_img2img_folders(client, app):
    outputs = app.paths.resolve("outputs")

    def saved(folder: str) -> set[str]:
        return {p.name for p in (outputs / folder).rglob("*.png")}

    samples, grids = saved("img2img-images"), saved("img2img-grids")
    _post(client, "SD upscale", [None, 0, "Nearest", 2.0], steps=1, save_images=True)
    new = saved("img2img-images") - samples
    assert len(new) == 1  # the tiles are not saved, the whole picture is
    (path,) = [p for p in (outputs / "img2img-images").rglob("*.png") if p.name in new]
    with Image.open(path) as image:
        assert image.size == (128, 128) and "SD upscale upscaler: Nearest" in image.info["parameters"]
    _post(client, "Loopback", [2, 0.5, "Linear", "None"], steps=1, save_images=True)
    assert len(saved("img2img-grids") - grids) == 1 and not (outputs / "txt2img-grids").exists()
    before = saved("img2img-images") | saved("img2img-grids")
    _post(client, "Loopback", [2, 0.5, "Linear", "None"], steps=1)  # A1111's API default: save nothing
    _post(client, "SD upscale", [None, 0, "Nearest", 2.0], steps=1)
    assert saved("img2img-images") | saved("img2img-grids") == before


def test_the_img2img_controls_build_inside_a_page(runner):
    import gradio as gr

    from modules.sumi.builtin_scripts import xyz_grid as xyz_ui

    scripts = {s.title(): s for s in runner.selectable_scripts}
    with gr.Blocks():
        built = {title: scripts[title].ui(True) for title in scripts}
    ours = ("Loopback", "Outpainting mk2", "Poor man's outpainting", "SD upscale")
    assert [len(built[title]) for title in ours] == [4, 6, 4, 4]
    assert built["Loopback"][3].visible  # "Append interrogated prompt" is shown, as in A1111
    xyz = built["X/Y/Z plot"]
    paste = dict((id(c), key) for c, key in scripts["X/Y/Z plot"].infotext_fields)
    assert paste[id(xyz[0])]({"X Type": "Denoising"}) == 24
    assert xyz_ui._select_axis(9, "Euler", [], False, is_img2img=True)[2]["value"] == ["Euler"]


def test_loopback_stops_at_an_interrupt(client, app):
    jobs: list[int] = []

    def interrupt_second_loop(params):
        if params.sampling_step == 0:
            jobs.append(1)
            if len(jobs) == 2:
                app.state.interrupt()

    app.callbacks.add("cfg_denoiser", interrupt_second_loop)
    try:
        result = _post(client, "Loopback", [4, 0.25, "Linear", "None"], steps=1)
    finally:
        app.callbacks.remove_function(interrupt_second_loop)
    assert len(jobs) == 2  # the third and fourth loops never started
    assert len(result.images) == 1 and result.params[0]["Seed"] == "4"  # the first loop's picture, no grid


def test_outpainting_mk2_grows_every_picture_of_a_batch(client):
    args = [None, 64, 4, ["right"], 1.0, 0.05]
    result = _post(client, "Outpainting mk2", args, batch_size=2, steps=1)
    assert len(result.images) == 3 and result.info["index_of_first_image"] == 1  # the grid, then 2
    assert [image.shape[:2] for image in result.images[1:]] == [(64, 128), (64, 128)]
    assert result.images[0].shape[:2] == (64, 256)
    assert not np.array_equal(result.images[1], result.images[2])  # seeds 4 and 5
    upscaled = _post(client, "SD upscale", [None, 0, "Nearest", 2.0], batch_size=3, steps=1)
    assert len(upscaled.images) == 1 and upscaled.images[0].shape[:2] == (128, 128)  # 4 tiles: jobs of 3 + 1
