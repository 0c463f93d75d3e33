"""A1111 1.10's "Saving images/grids" settings change the bytes Sumi writes, on every path that saves:
generated images and grids, script grids, img2img batch folders, Extras, A1111's `images.save_image`
facade, and the images the API returns.

- `jpeg_quality` (1-100, default 80): the JPEG's quantization tables are those Pillow writes at that
  quality (and a lower quality gives a smaller file); also avif and lossy webp.
- `webp_lossless`: a webp file holds exactly the job's pixels.
- `export_for_4chan` with `img_downscale_threshold` / `target_side_length`: a .jpg copy beside a large
  file, scaled down to the side length, with the infotext.
- `img_max_size_mp`: grids larger than it are not made; `grid_only_if_multiple`, `grid_extended_filename`,
  `save_images_replace_action`, `save_incomplete_images`.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.images.saving import (
    SaveSettings,
    encode_image,
    read_infotext_from_image,
)
from modules.sumi.services.jobs.img2img_batch import BatchFolders
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
)
from modules.sumi.services.postprocessing.service import ExtrasRequest

BASE = {"prompt": "a red circle", "steps": 1, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}
SETTINGS = (
    "samples_format",
    "grid_format",
    "jpeg_quality",
    "webp_lossless",
    "export_for_4chan",
    "img_downscale_threshold",
    "target_side_length",
    "img_max_size_mp",
    "grid_only_if_multiple",
    "grid_extended_filename",
    "return_grid",
    "save_images_add_number",
    "save_images_replace_action",
    "save_incomplete_images",
    "use_original_name_batch",
)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("saving") / "data", "--nowebui")


@pytest.fixture(autouse=True)
def _default_settings(app):
    yield
    app.settings.set({key: app.options.get_default(key) for key in SETTINGS})


def txt2img(app, folder: str, **changes) -> tuple[Processed, Path, Path]:
    """A tiny job saving into `<data>/<folder>/samples` and `.../grids`; (processed, samples, grids)."""
    samples, grids = app.paths.data_dir / folder / "samples", app.paths.data_dir / folder / "grids"
    fields = {**BASE, "outpath_samples": str(samples), "outpath_grids": str(grids), **changes}
    return app.runner.txt2img(StableDiffusionProcessingTxt2Img(**fields)), samples, grids


def files(folder: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in folder.rglob(pattern) if p.is_file() and p.suffix != ".txt")


def pillow_tables(quality: int) -> dict:
    """The quantization tables Pillow writes for an RGB JPEG at `quality`."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, "JPEG", quality=quality)
    with Image.open(buffer) as image:
        return dict(getattr(image, "quantization"))  # noqa: B009 (JpegImageFile only)


def tables(data: Path | bytes) -> dict:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        assert image.format == "JPEG"
        return dict(getattr(image, "quantization"))  # noqa: B009 (JpegImageFile only)


def pixels(source: Path | bytes | Image.Image) -> np.ndarray:
    if isinstance(source, Image.Image):
        return np.asarray(source.convert("RGB"))
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        return np.asarray(image.convert("RGB"))


def test_the_settings_read_from_options_follow_a1111s_defaults(app):
    assert SaveSettings.from_options(app.options) == SaveSettings(
        quality=80, webp_lossless=False, jpg_copy=True, jpg_copy_over_mb=4.0, jpg_copy_side=4000, replace=True
    )
    labels = app.options.data_labels
    assert labels["jpeg_quality"].section[0] == labels["webp_lossless"].section[0] == "saving-images"
    assert labels["jpeg_quality"].component_args == {"minimum": 1, "maximum": 100, "step": 1}


def test_encoding_honours_quality_and_lossless_webp():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    low, high = encode_image(image, "jpg", quality=30), encode_image(image, "jpg", quality=95)
    assert len(low) < len(high)
    assert tables(low) == pillow_tables(30) and tables(high) == pillow_tables(95)
    assert np.array_equal(pixels(encode_image(image, "webp", lossless=True)), pixels(image))
    assert not np.array_equal(pixels(encode_image(image, "webp", quality=50)), pixels(image))
    assert len(encode_image(image, "avif", quality=20)) < len(encode_image(image, "avif", quality=90))


# --- generated images and grids (services/jobs/generation.py) -------------------------------------


def test_jpeg_quality_sets_the_quantization_of_generated_images_and_grids(app):
    written = {}
    for quality in (30, 95):
        overrides = {"samples_format": "jpg", "grid_format": "jpg", "jpeg_quality": quality}
        _, samples, grids = txt2img(app, f"q{quality}", batch_size=2, override_settings=overrides)
        saved, grid = files(samples), files(grids)
        assert [p.suffix for p in saved] == [".jpg", ".jpg"] and [p.suffix for p in grid] == [".jpg"]
        assert all(tables(p) == pillow_tables(quality) for p in [*saved, *grid])
        written[quality] = sum(p.stat().st_size for p in saved)
    assert written[30] < written[95]
    assert app.options.jpeg_quality == 80  # a job's override_settings stay in the job


def test_webp_lossless_saves_the_jobs_exact_pixels(app):
    overrides = {"samples_format": "webp", "grid_format": "webp", "webp_lossless": True}
    processed, samples, grids = txt2img(app, "lossless", batch_size=2, override_settings=overrides)
    grid, *images = processed.images
    saved = files(samples)
    assert [p.suffix for p in saved] == [".webp", ".webp"]
    assert all(np.array_equal(pixels(path), pixels(image)) for path, image in zip(saved, images, strict=True))
    assert np.array_equal(pixels(files(grids)[0]), pixels(grid))
    lossy, samples, _ = txt2img(app, "lossy", override_settings={"samples_format": "webp"})
    assert not np.array_equal(pixels(files(samples)[0]), pixels(lossy.images[0]))


def test_a_large_image_gets_a_downscaled_jpg_copy_with_its_infotext(app):
    app.settings.set({"target_side_length": 40, "jpeg_quality": 30})
    processed, samples, _ = txt2img(app, "4chan")
    (copy, png) = files(samples)  # 00000-11-a red circle.jpg and .png
    assert (png.suffix, copy.suffix, copy.stem) == (".png", ".jpg", png.stem)
    with Image.open(copy) as image:
        assert image.size == (40, 40) and read_infotext_from_image(image) == processed.infotexts[0]
    assert tables(copy) == pillow_tables(30)
    app.settings.set({"target_side_length": 4000, "img_downscale_threshold": 0.0})  # any file is "large"
    _, samples, _ = txt2img(app, "4chan-size")
    assert [(p.suffix, Image.open(p).size) for p in files(samples)] == [
        (".jpg", (64, 64)),
        (".png", (64, 64)),
    ]
    app.settings.set({"export_for_4chan": False})
    _, samples, _ = txt2img(app, "no-copy")
    assert [p.suffix for p in files(samples)] == [".png"]


def test_a_jpg_file_gets_no_second_jpg(app):
    app.settings.set({"target_side_length": 40, "samples_format": "jpg"})
    _, samples, _ = txt2img(app, "jpg-no-copy")
    saved = files(samples)
    assert len(saved) == 1 and Image.open(saved[0]).size == (64, 64)


def test_grid_settings_decide_which_grids_are_made_and_their_names(app):
    processed, _, grids = txt2img(app, "single")
    assert processed.index_of_first_image == 0 and files(grids) == []  # grid_only_if_multiple
    app.settings.set({"grid_only_if_multiple": False, "grid_extended_filename": True, "return_grid": False})
    processed, _, grids = txt2img(app, "single-grid")
    assert processed.index_of_first_image == 0 and len(processed.images) == 1  # saved, not shown
    (grid,) = files(grids)
    assert grid.name == "grid-0000-11.png"  # A1111: grid-NNNN-<samples pattern> ([seed] in date folders)


def test_on_image_grid_callbacks_shape_the_job_grid(app):
    """A1111 runs `on_image_grid` callbacks on every grid before it is drawn: here one column."""
    seen = []

    def one_column(params) -> None:
        seen.append((len(params.imgs), params.cols, params.rows))
        params.cols, params.rows = 1, len(params.imgs)

    app.callbacks.add("image_grid", one_column)
    try:
        processed, _, grids = txt2img(app, "grid-callback", batch_size=2)
    finally:
        app.callbacks.clear()
    assert seen == [(2, 2, 1)]  # A1111's layout for 2 pictures: one row of two
    (grid,) = files(grids)
    assert Image.open(grid).size == (64, 128) and processed.images[0].size == (64, 128)


def test_a_batch_grid_larger_than_img_max_size_mp_is_not_made(app):
    app.settings.set({"img_max_size_mp": 1})
    processed, _, grids = txt2img(app, "huge", width=512, height=512, batch_size=4)
    assert processed.index_of_first_image == 0 and len(processed.images) == 4 and files(grids) == []
    assert any("img_max_size_mp" in w for w in processed.warnings)


def test_an_interrupted_batch_is_saved_only_with_save_incomplete_images(app):
    def interrupt(params) -> None:
        app.state.interrupt()

    app.callbacks.add("cfg_denoiser", interrupt)
    try:
        processed, samples, _ = txt2img(app, "interrupted", steps=3)
        assert len(processed.images) == 1 and files(samples) == []  # shown, not saved (A1111)
        app.settings.set({"save_incomplete_images": True})
        _, samples, _ = txt2img(app, "incomplete", steps=3)
        assert len(files(samples)) == 1
    finally:
        app.callbacks.remove_function(interrupt)


# --- script grids, img2img batch, Extras, images.save_image -----------------------------------------


def test_script_grids_use_the_quality(app):
    from modules.sumi.services.jobs.script_jobs import save_grid

    app.settings.set({"grid_format": "jpg", "jpeg_quality": 30})
    job = StableDiffusionProcessingTxt2Img(**BASE, outpath_grids=str(app.paths.data_dir / "script-grid"))
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 48, 3), dtype=np.uint8))
    path = save_grid(app, job, picture, "infotext", "xyz_grid")
    assert path is not None and path.name.startswith("xyz_grid-") and tables(path) == pillow_tables(30)


def test_img2img_batch_folders_use_quality_and_lossless(app):
    inputs, outputs = app.paths.data_dir / "batch-in", app.paths.data_dir / "batch-out"
    inputs.mkdir()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(inputs / "pic.png")
    for fmt, settings in (("jpg", {"jpeg_quality": 30}), ("webp", {"webp_lossless": True})):
        app.settings.set({"samples_format": fmt, **settings})
        p = StableDiffusionProcessingImg2Img(**BASE, init_images=[], denoising_strength=0.5)
        processed = app.runner.img2img_batch(p, BatchFolders(input_dir=str(inputs), output_dir=str(outputs)))
        out = outputs / f"pic.{fmt}"
        if fmt == "jpg":
            assert tables(out) == pillow_tables(30)
        else:
            assert np.array_equal(pixels(out), pixels(processed.images[0]))


def test_extras_saves_with_the_quality(app):
    app.settings.set({"samples_format": "jpg", "jpeg_quality": 30})
    args = app.scripts.postproc.create_args_for_run(
        {"Upscale": {"upscaler_1_name": "Lanczos", "upscaling_resize": 2}}, context=gr.Blocks
    )
    picture = Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    result = app.extras.run(ExtrasRequest(image=picture, args=args))
    (path,) = result.saved
    assert path.suffix == ".jpg" and tables(path) == pillow_tables(30)


def test_a1111_save_image_uses_the_settings_and_the_replace_action(app):
    from modules import images

    picture = Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    folder = str(app.paths.data_dir / "facade")
    app.settings.set({"webp_lossless": True, "jpeg_quality": 30})
    path, _ = images.save_image(picture, folder, "", 1, "cat", extension="webp", info="a cat")
    assert np.array_equal(pixels(Path(path)), pixels(picture))
    path, _ = images.save_image(picture, folder, "", 1, "cat", extension="jpg", forced_filename="fixed")
    assert tables(Path(path)) == pillow_tables(30)
    again, _ = images.save_image(picture, folder, "", 1, "cat", extension="jpg", forced_filename="fixed")
    assert again == path  # "Replace", A1111's default
    app.settings.set({"save_images_replace_action": "Add number suffix"})
    third, _ = images.save_image(picture, folder, "", 1, "cat", extension="jpg", forced_filename="fixed")
    assert Path(third).name == "fixed-1.jpg" and Path(path).exists()
    app.settings.set({"save_images_add_number": False})
    first, _ = images.save_image(picture, folder, "", 7, "dog", extension="png")
    second, _ = images.save_image(picture, folder, "", 7, "dog", extension="png")
    assert Path(first).name == "7.png" and Path(second).name == "7-1.png"  # [seed] in date folders


# --- the API's images --------------------------------------------------------------------------------


def test_the_api_returns_images_in_samples_format_with_the_quality(app, client):
    def post(**settings) -> bytes:
        app.settings.set(settings)
        response = client.post("/sdapi/v1/txt2img", json={**BASE, "batch_size": 1})
        assert response.status_code == 200, response.text
        return base64.b64decode(response.json()["images"][0])

    png = post(samples_format="png")
    low, high = post(samples_format="jpg", jpeg_quality=30), post(samples_format="jpg", jpeg_quality=95)
    assert tables(low) == pillow_tables(30) and tables(high) == pillow_tables(95) and len(low) < len(high)
    assert "Seed: 11" in (read_infotext_from_image(Image.open(io.BytesIO(low))) or "")
    lossless = post(samples_format="webp", webp_lossless=True)
    assert Image.open(io.BytesIO(lossless)).format == "WEBP"
    assert np.array_equal(pixels(lossless), pixels(png))


def test_encode_pil_to_base64_uses_the_quality(app):
    from modules.api import api

    app.settings.set({"samples_format": "jpg", "jpeg_quality": 30})
    picture = Image.new("RGB", (16, 16), "blue")
    assert tables(base64.b64decode(api.encode_pil_to_base64(picture))) == pillow_tables(30)
