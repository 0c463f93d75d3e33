"""A1111's img2img surface for extensions: `modules.img2img.process_batch` over folders (masks by name,
PNG info as parameters, an output folder inside the data folder), `modules.masking`, and
`modules.processing.apply_overlay`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import read_infotext_from_image
from modules.sumi.services.jobs.infotext import parse_infotext


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), loaded=True)


def batch_job(**changes):
    from modules.processing import StableDiffusionProcessingImg2Img

    values = {
        "prompt": "a fox",
        "steps": 2,
        "width": 64,
        "height": 64,
        "seed": 9,
        "sampler_name": "Euler",
        "denoising_strength": 0.5,
        "inpaint_full_res": False,
        "mask_blur": 0,
    }
    return StableDiffusionProcessingImg2Img(**{**values, **changes})


def write_inputs(folder, with_info: bool = False):
    folder.mkdir(parents=True)
    for i, name in enumerate(["one", "two"]):
        info = PngImagePlugin.PngInfo()
        if with_info:
            info.add_text(
                "parameters",
                f"a cat {name}\nSteps: 3, Sampler: Euler, CFG scale: 5, Seed: {40 + i}, Size: 64x64",
            )
        Image.new("RGB", (64, 64), (40 * i, 100, 200)).save(folder / f"{name}.png", pnginfo=info)


def test_process_batch_runs_every_image_with_its_mask_into_the_output_folder(app):
    from modules import img2img

    data = app.paths.data_dir
    write_inputs(data / "batch-in")
    masks = data / "batch-masks"
    masks.mkdir()
    for name, box in (("one", (0, 0, 32, 32)), ("two", (32, 32, 64, 64))):
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, box)
        mask.save(masks / f"{name}.png")
    processed = img2img.process_batch(
        batch_job(), str(data / "batch-in"), str(data / "batch-out"), str(masks), []
    )
    assert len(processed.images) == 2
    one = np.asarray(Image.open(data / "batch-out" / "one.png").convert("RGB")).astype(int)
    two = np.asarray(Image.open(data / "batch-out" / "two.png").convert("RGB")).astype(int)
    assert (one[40:, 40:] == (0, 100, 200)).all() and (
        two[:24, :24] == (40, 100, 200)
    ).all()  # outside each mask
    text = read_infotext_from_image(Image.open(data / "batch-out" / "one.png"))
    assert parse_infotext(text)["Denoising strength"] == "0.5"


def test_process_batch_reads_the_parameters_from_png_info(app):
    from modules import img2img

    data = app.paths.data_dir
    write_inputs(data / "info-in", with_info=True)
    processed = img2img.process_batch(
        batch_job(),
        str(data / "info-in"),
        "",
        "",
        [],
        use_png_info=True,
        png_info_props=["Prompt", "Seed", "Steps"],
    )
    params = [parse_infotext(t) for t in processed.infotexts]
    assert [p["Prompt"] for p in params] == ["a fox a cat one", "a fox a cat two"]
    assert [p["Seed"] for p in params] == ["40", "41"] and params[0]["Steps"] == "3"
    assert params[0]["CFG scale"] == "7"  # not among the chosen properties
    assert list((data / "outputs" / "img2img-images").rglob("*-40-a fox a cat one.png"))  # saved normally


def test_process_batch_refuses_an_output_folder_outside_the_data_folder(app, tmp_path):
    from modules import img2img

    write_inputs(app.paths.data_dir / "out-in")
    with pytest.raises(InvalidRequestError, match="outside the data folder"):
        img2img.process_batch(
            batch_job(), str(app.paths.data_dir / "out-in"), str(tmp_path / "elsewhere"), "", []
        )
    assert not (tmp_path / "elsewhere").exists()


def test_masking_helpers_and_apply_overlay():
    from modules import masking, processing

    mask = Image.new("L", (100, 80), 0)
    mask.paste(255, (40, 30, 50, 40))
    assert masking.get_crop_region_v2(mask, 5) == (35, 25, 55, 45)
    assert masking.get_crop_region_v2(Image.new("L", (10, 10)), 5) is None
    assert masking.expand_crop_region((35, 25, 55, 45), 64, 32, 100, 80) == (25, 25, 65, 45)
    filled = masking.fill(Image.new("RGB", (100, 80), (200, 10, 10)), mask)
    assert np.abs(np.asarray(filled)[35, 45].astype(int) - (200, 10, 10)).max() <= 2  # from around it
    overlay = Image.new("RGBA", (100, 80), (0, 0, 255, 255))
    result, before = processing.apply_overlay(
        Image.new("RGB", (20, 20), (0, 255, 0)), (10, 10, 20, 20), overlay
    )
    assert result.size == (100, 80) and result.getpixel((15, 15)) == (0, 0, 255)
    assert before.getpixel((15, 15))[:3] == (0, 255, 0)
    assert processing.apply_overlay(Image.new("RGB", (4, 4)), None, 0, [None]).size == (4, 4)  # A1111 < 1.8
