"""The Extras job: A1111's postprocessing scripts (built-in Upscale and an extension's), their order,
the Upscale script's semantics, the three input modes, saving with infotext, and interruption."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.postprocessing.service import (
    BATCH,
    DIRECTORY,
    BatchImage,
    ExtrasRequest,
)
from tests.fixtures.files import write_files

EXTENSION_SCRIPT = """
import gradio as gr
from PIL import ImageOps

from modules import scripts_postprocessing, shared


class Posterize(scripts_postprocessing.ScriptPostprocessing):
    name = "Posterize"
    order = 500

    def ui(self):
        return {
            "enabled": gr.Checkbox(False, label="Posterize"),
            "bits": gr.Slider(1, 8, value=2, step=1, label="Bits"),
            "with_mask": gr.Checkbox(False, label="Also a mask"),
            "interrupt": gr.Checkbox(False, label="Interrupt"),
        }

    def process(self, pp, enabled, bits, with_mask, interrupt):
        if not enabled:
            return
        pp.info["Posterize"] = int(bits)
        pp.info["Target seen"] = f"{pp.shared.target_width}x{pp.shared.target_height}"
        pp.image = ImageOps.posterize(pp.image, int(bits))
        if with_mask:
            pp.extra_images.append(pp.create_copy(pp.image.convert("L").convert("RGB"), nametags=["mask"]))
        if interrupt:
            shared.state.interrupt()
"""
# A1111's dataset preparation scripts (order 4000, by name) come after the face restorers
DATASET_SCRIPTS = [
    "Auto focal point crop",
    "Auto-sized crop",
    "Caption",
    "Create flipped copies",
    "Split oversized images",
]
PARAMETERS = (
    "a red fox\nNegative prompt: blurry\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 64x48"
)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("extras") / "data"
    write_files(data / "extensions" / "sd-webui-posterize", {"scripts/posterize.py": EXTENSION_SCRIPT})
    return make_module_app(data, "--nowebui")


@pytest.fixture(autouse=True)
def _default_settings(app):
    yield
    for key in ("postprocessing_operation_order", "postprocessing_disable_in_extras"):
        app.options.set(key, [])
    app.options.set("use_original_name_batch", True)


def picture(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    image.info["parameters"] = PARAMETERS
    return image


def args(app, upscale: dict | None = None, posterize: dict | None = None) -> list:
    return app.scripts.postproc.create_args_for_run(
        {"Upscale": {"upscaler_1_name": "Lanczos", **(upscale or {})}, "Posterize": posterize or {}},
        context=gr.Blocks,
    )


def run(app, image=None, **kwargs):
    return app.extras.run(ExtrasRequest(image=image if image is not None else picture(), **kwargs))


def test_an_extension_script_is_found_and_runs_in_its_order(app):
    names = [s.name for s in app.scripts.postproc.scripts_in_preferred_order()]
    # 500, then A1111's 1000, 2000, 3000 and 4000
    assert names == ["Posterize", "Upscale", "GFPGAN", "CodeFormer", *DATASET_SCRIPTS]


def test_the_operation_order_setting_and_the_disable_setting_are_obeyed(app):
    app.options.set("postprocessing_operation_order", ["Upscale"])
    ordered = [s.name for s in app.scripts.postproc.scripts_in_preferred_order()]
    assert ordered == [
        "Upscale",
        "Posterize",
        "GFPGAN",
        "CodeFormer",
        *DATASET_SCRIPTS,
    ]  # the rest by `order`
    app.options.set("postprocessing_disable_in_extras", ["Posterize"])
    assert [s.name for s in app.scripts.postproc.scripts_in_preferred_order()] == [
        "Upscale",
        "GFPGAN",
        "CodeFormer",
        *DATASET_SCRIPTS,
    ]


def test_firstpass_of_every_script_runs_before_any_process(app):
    result = run(app, args=args(app, {"upscale_mode": 0, "upscale_by": 2}, {"enabled": True}))
    # Posterize runs first, yet sees the size Upscale announced in its first pass
    assert "Target seen: 128x96" in result.infotext
    assert result.images[0].size == (128, 96)


def test_scale_by_doubles_the_picture_and_says_so(app):
    result = run(app, args=args(app, {"upscale_mode": 0, "upscale_by": 2}))
    assert result.images[0].size == (128, 96)
    assert result.infotext == "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos"
    expected = picture().resize((128, 96), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(expected))


def test_scale_to_with_crop_centres_the_enlarged_picture_on_the_target(app):
    image = picture(64, 32)
    cropped = run(
        app, image, args=args(app, {"upscale_mode": 1, "upscale_to_width": 96, "upscale_to_height": 96})
    )
    # enlarged by max(96/64, 96/32) = 3 to 192x96, then the middle 96x96 kept
    assert cropped.images[0].size == (96, 96)
    assert "Postprocess upscale to: 96x96" in cropped.infotext
    assert "Postprocess crop to: 96x96" in cropped.infotext
    enlarged = image.convert("RGB").resize((192, 96), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(cropped.images[0]), np.asarray(enlarged)[:, 48:144])
    uncropped = run(
        app,
        image,
        args=args(
            app, {"upscale_mode": 1, "upscale_to_width": 96, "upscale_to_height": 96, "upscale_crop": False}
        ),
    )
    assert uncropped.images[0].size == (192, 96)


def test_max_side_length_caps_scale_by(app):
    result = run(app, args=args(app, {"upscale_mode": 0, "upscale_by": 4, "max_side_length": 128}))
    assert result.images[0].size == (128, 96)
    assert "Max side length: 128" in result.infotext


def test_upscaler_2_is_blended_in_by_its_visibility(app):
    result = run(
        app,
        args=args(
            app,
            {
                "upscale_mode": 0,
                "upscale_by": 2,
                "upscaler_1_name": "Nearest",
                "upscaler_2_name": "Lanczos",
                "upscaler_2_visibility": 0.25,
            },
        ),
    )
    source = picture().convert("RGB")
    nearest = source.resize((128, 96), Image.Resampling.NEAREST)
    lanczos = source.resize((128, 96), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(Image.blend(nearest, lanczos, 0.25)))
    assert "Postprocess upscaler: Nearest, Postprocess upscaler 2: Lanczos" in result.infotext


def test_upscaler_1_none_leaves_the_picture_and_says_nothing_changed(app):
    result = run(app, args=args(app, {"upscale_mode": 0, "upscale_by": 2, "upscaler_1_name": "None"}))
    assert result.images[0].size == (64, 48)
    assert any("No operation changed the image" in w for w in result.warnings)


def test_an_unknown_upscaler_is_refused_naming_the_choices(app):
    with pytest.raises(InvalidRequestError, match="Lanczos"):
        run(app, args=args(app, {"upscaler_1_name": "4x-Nothing"}))


def test_a_result_over_64_megapixels_is_refused_before_upscaling(app):
    with pytest.raises(InvalidRequestError, match="megapixels"):
        run(app, picture(2048, 2048), args=args(app, {"upscale_mode": 0, "upscale_by": 8}))
    # Scale to 8192x8192 without crop keeps the proportions: a thin picture would come out 81920 wide
    scale_to = {"upscale_mode": 1, "upscale_to_width": 8192, "upscale_to_height": 8192, "upscale_crop": False}
    with pytest.raises(InvalidRequestError, match="megapixels"):
        run(app, picture(100, 10), args=args(app, scale_to))


def test_single_image_is_saved_with_its_parameters_and_the_operations(app):
    result = run(app, args=args(app, {"upscale_mode": 0, "upscale_by": 2}))
    (path,) = result.saved
    assert path.parent == app.paths.data_dir / "outputs" / "extras-images"
    assert path.name[:5].isdigit() and path.suffix == ".png"
    saved = Image.open(path)
    assert saved.size == (128, 96)
    assert saved.info["parameters"] == PARAMETERS  # the original PNG info is kept
    assert saved.info["postprocessing"] == "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos"
    assert saved.info["extras"] == saved.info["postprocessing"]


def test_extra_images_of_a_script_are_saved_and_shown_with_their_suffix(app):
    result = run(
        app, args=args(app, {"upscale_mode": 0, "upscale_by": 2}, {"enabled": True, "with_mask": True})
    )
    assert len(result.images) == len(result.saved) == 2
    assert result.saved[1].stem.endswith("-mask")
    # the mask was added by Posterize and then went through Upscale too
    assert result.images[1].size == (128, 96)


def test_a_batch_of_uploads_keeps_the_original_names(app):
    images = [BatchImage(picture(seed=1), "cat.png"), BatchImage(picture(seed=2), "dog.webp")]
    result = app.extras.run(ExtrasRequest(mode=BATCH, images=images, args=args(app, {"upscale_by": 2})))
    assert [p.name for p in result.saved] == ["cat.png", "dog.png"]
    assert [i.size for i in result.images] == [(128, 96), (128, 96)]


def test_a_batch_from_a_directory_writes_to_the_output_directory(app):
    source = app.paths.data_dir / "to-upscale"
    source.mkdir(exist_ok=True)
    for i in range(2):
        picture(seed=i).save(source / f"in{i}.png", pnginfo=None)
    (source / "notes.txt").write_text("not an image")
    request = ExtrasRequest(
        mode=DIRECTORY,
        input_dir="to-upscale",
        output_dir="upscaled",
        show_results=False,
        args=args(app, {"upscale_by": 2}),
    )
    result = app.extras.run(request)
    assert result.images == []  # "Show result images" off
    assert sorted(p.name for p in (app.paths.data_dir / "upscaled").iterdir()) == ["in0.png", "in1.png"]


def test_directories_outside_the_data_folder_are_refused(app, tmp_path):
    for request in (
        ExtrasRequest(mode=DIRECTORY, input_dir=str(tmp_path)),
        ExtrasRequest(mode=DIRECTORY, input_dir="to-upscale", output_dir="../../elsewhere"),
    ):
        (app.paths.data_dir / "to-upscale").mkdir(exist_ok=True)
        with pytest.raises(InvalidRequestError, match="outside the data folder"):
            app.extras.run(request)


def test_interrupt_stops_a_batch_between_images(app):
    images = [picture(seed=i) for i in range(3)]
    request = ExtrasRequest(
        mode=BATCH, images=images, args=args(app, {"upscale_by": 1}, {"enabled": True, "interrupt": True})
    )
    assert len(app.extras.run(request).images) == 1


def test_the_operation_settings_offer_the_loaded_scripts(app):
    extras = app.options.data_labels["postprocessing_operation_order"].resolved_component_args()["choices"]
    main_ui = app.options.data_labels["postprocessing_enable_in_main_ui"].resolved_component_args()["choices"]
    assert {"Upscale", "Posterize"} <= set(extras) and "Simple Upscale" not in extras
    assert {"Upscale", "Posterize", "Simple Upscale"} <= set(main_ui)


def test_upscale_first_orders_upscale_around_the_face_restorers(app):
    from modules.sumi.services.postprocessing.a1111_args import run_order

    assert run_order(True, faces=False) is None  # no face restorer in use: the configured order
    assert run_order(True, faces=True) == ["Upscale", "GFPGAN", "CodeFormer"]
    assert run_order(False, faces=True) == ["GFPGAN", "CodeFormer", "Upscale"]
    order = [s.name for s in app.scripts.postproc.scripts_in_preferred_order(["Upscale"])]
    assert order == ["Upscale", "Posterize", "GFPGAN", "CodeFormer", *DATASET_SCRIPTS]  # a run's order first
    # ... and is what runs: Upscale first, so Posterize's entry comes after Upscale's in the infotext
    result = app.extras.run(
        ExtrasRequest(
            image=picture(), args=args(app, {"upscale_by": 2}, {"enabled": True}), order=["Upscale"]
        )
    )
    assert result.infotext.index("Postprocess upscaler") < result.infotext.index("Posterize")
