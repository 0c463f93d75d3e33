"""A1111's dataset preparation scripts in the Extras tab: Split oversized images, Auto focal point crop,
Auto-sized crop and Create flipped copies. Their names, order, controls and defaults are A1111 1.10's;
through the Extras job they turn pictures into target-sized training pictures (checked by sizes and
pixels), and "Batch from directory" turns a folder of raw pictures into a dataset folder."""

from __future__ import annotations

import importlib

import gradio as gr
import numpy as np
import pytest
from PIL import Image, ImageOps

from modules.scripts_postprocessing import PostprocessedImage
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.postprocessing.service import BATCH, DIRECTORY, ExtrasRequest
from tests.fixtures.tiny_faces import write_bright_spot_detector

SCRIPTS = {
    "Split oversized images": ("postprocessing_split_oversized", "ScriptPostprocessingSplitOversized"),
    "Auto focal point crop": ("postprocessing_focal_crop", "ScriptPostprocessingFocalCrop"),
    "Auto-sized crop": ("postprocessing_autosized_crop", "ScriptPostprocessingAutosizedCrop"),
    "Create flipped copies": (
        "postprocessing_create_flipped_copies",
        "ScriptPostprocessingCreateFlippedCopies",
    ),
}
CONTROLS = {
    "Split oversized images": {"enable": False, "split_threshold": 0.5, "overlap_ratio": 0.2},
    "Auto focal point crop": {
        "enable": False,
        "face_weight": 0.9,
        "entropy_weight": 0.15,
        "edges_weight": 0.5,
        "debug": False,
    },
    "Auto-sized crop": {
        "enable": False,
        "mindim": 384,
        "maxdim": 768,
        "minarea": 64 * 64,
        "maxarea": 640 * 640,
        "objective": "Maximize area",
        "threshold": 0.1,
    },
    "Create flipped copies": {"enable": False, "option": ["Horizontal"]},
}


def script(name: str):
    module, cls = SCRIPTS[name]
    return getattr(importlib.import_module(f"modules.sumi.builtin_scripts.{module}"), cls)()


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("dataset-prep") / "data", "--nowebui")


@pytest.fixture(autouse=True)
def _original_names(app):
    app.options.set("use_original_name_batch", True)


def noisy(width: int, height: int, seed: int = 0, high: int = 256) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, high, (height, width, 3), dtype=np.uint8))


def args(app, to: tuple[int, int] = (64, 64), **scripts: dict) -> list:
    """The flat arguments: Upscale announcing `to` (Scale to, no upscaler: the pictures keep their size
    until a dataset script crops them) and the scripts' values, keyed by A1111's script names with
    spaces and dashes as underscores (Auto_sized_crop)."""
    upscale = {
        "upscale_mode": 1,
        "upscale_to_width": to[0],
        "upscale_to_height": to[1],
        "upscaler_1_name": "None",
    }
    names = {name.replace(" ", "_").replace("-", "_"): name for name in SCRIPTS}
    named = {names[key]: values for key, values in scripts.items()}
    return app.scripts.postproc.create_args_for_run({"Upscale": upscale, **named}, context=gr.Blocks)


def run(app, image: Image.Image, to: tuple[int, int] = (64, 64), **scripts: dict):
    return app.extras.run(ExtrasRequest(image=image, args=args(app, to, **scripts), save=False))


def test_the_scripts_declare_a1111s_names_order_controls_and_defaults():
    for name, defaults in CONTROLS.items():
        instance = script(name)
        assert (instance.name, instance.order) == (name, 4000)
        with gr.Blocks():
            controls = instance.ui()
        assert list(controls) == list(defaults), name
        assert {k: getattr(c, "value", c) for k, c in controls.items()} == defaults, name
    with gr.Blocks():
        split, focal, autosize = (script(n).ui() for n in list(SCRIPTS)[:3])
    assert (split["split_threshold"].label, split["overlap_ratio"].label) == ("Threshold", "Overlap ratio")
    assert split["overlap_ratio"].maximum == 0.9
    assert focal["face_weight"].label == "Focal point face weight"
    assert focal["debug"].elem_id == "train_process_focal_crop_debug"
    assert autosize["objective"].choices == [("Maximize area",) * 2, ("Minimize error",) * 2]
    assert autosize["mindim"].elem_id == "postprocess_multicrop_mindim"


def test_extras_offers_them_after_the_face_restorers_in_a1111s_order(app):
    names = [s.name for s in app.scripts.postproc.scripts_in_preferred_order()]
    assert names[-5:] == [
        "Auto focal point crop",
        "Auto-sized crop",
        "Caption",
        "Create flipped copies",
        "Split oversized images",
    ]


def test_left_off_they_change_nothing(app):
    picture = noisy(64, 200)
    result = run(app, picture)
    assert len(result.images) == 1 and np.array_equal(np.asarray(result.images[0]), np.asarray(picture))
    assert any("No operation changed the image" in w for w in result.warnings)


def test_a_tall_picture_is_split_into_overlapping_target_sized_tiles(app):
    picture = noisy(64, 200)
    result = run(app, picture, Split_oversized_images={"enable": True, "overlap_ratio": 0.2})
    # 64 wide already: tiles of 64 rows down 200 rows, a fifth shared at least: 0, 45, 90, 136
    assert [i.size for i in result.images] == [(64, 64)] * 4
    source = np.asarray(picture)
    for tile, top in zip(result.images, (0, 45, 90, 136), strict=True):
        assert np.array_equal(np.asarray(tile), source[top : top + 64])
    assert result.warnings == []  # the tiles are a change even with no infotext entry (A1111 adds none)


def test_split_leaves_pictures_within_the_threshold_alone(app):
    picture = noisy(64, 100)  # 0.64 of the square target's proportions: above 0.5
    result = run(app, picture, Split_oversized_images={"enable": True, "split_threshold": 0.5})
    assert [i.size for i in result.images] == [(64, 100)]
    split = run(app, picture, Split_oversized_images={"enable": True, "split_threshold": 0.7})
    assert [i.size for i in split.images] == [(64, 64), (64, 64)]


def test_flipped_copies_are_mirror_images_in_a1111s_order(app):
    picture = noisy(40, 30)
    result = run(
        app, picture, Create_flipped_copies={"enable": True, "option": ["Both", "Horizontal", "Vertical"]}
    )
    original, horizontal, vertical, both = (np.asarray(i) for i in result.images)
    assert np.array_equal(original, np.asarray(picture))
    assert np.array_equal(horizontal, np.asarray(ImageOps.mirror(picture)))
    assert np.array_equal(vertical, np.asarray(ImageOps.flip(picture)))
    assert np.array_equal(both, np.asarray(picture.rotate(180)))
    with pytest.raises(InvalidRequestError, match="Diagonal"):
        run(app, picture, Create_flipped_copies={"enable": True, "option": ["Diagonal"]})


def test_copies_go_through_the_scripts_after_them(app):
    result = run(
        app, noisy(64, 200), Create_flipped_copies={"enable": True}, Split_oversized_images={"enable": True}
    )
    assert [i.size for i in result.images] == [(64, 64)] * 8  # both the picture and its mirror split


def test_autosized_crop_picks_a_size_for_each_picture(app):
    crop = {"enable": True, "mindim": 64, "maxdim": 256, "maxarea": 128 * 128, "threshold": 0.1}
    wide = run(app, noisy(300, 150), Auto_sized_crop=crop)
    assert [i.size for i in wide.images] == [(128, 64)]  # 2:1 as the picture; 256x128 is over the area
    square = run(app, noisy(300, 300), Auto_sized_crop=crop)
    assert [i.size for i in square.images] == [(128, 128)]
    hopeless = run(app, noisy(900, 100), Auto_sized_crop=crop)  # 9:1 fits no size: left as it is
    assert [i.size for i in hopeless.images] == [(900, 100)]
    with pytest.raises(InvalidRequestError, match="Dimension|dimension"):
        run(app, noisy(300, 300), Auto_sized_crop={**crop, "mindim": 512, "maxdim": 256})


def test_focal_crop_cuts_the_target_size_around_the_detail(app):
    picture = Image.new("RGB", (300, 100), (120, 120, 120))
    picture.paste(noisy(60, 60), (220, 20))
    result = run(app, picture, Auto_focal_point_crop={"enable": True, "edges_weight": 0.0})
    (crop,) = result.images
    # the crop holds the noisy patch (smoothed by the scaling to cover 64x64), not the flat rest
    assert crop.size == (64, 64) and np.asarray(crop).std() > 15
    debug = run(app, picture, Auto_focal_point_crop={"enable": True, "debug": True}, to=(50, 50))
    assert [i.size for i in debug.images] == [(50, 50), (150, 50)]  # the crop, the annotated picture


def test_focal_crop_looks_for_faces_with_sumis_detector_when_it_is_there(app):
    picture = Image.new("RGB", (400, 100), (128, 128, 128))
    picture.paste(noisy(60, 80, seed=3, high=150), (10, 10))  # detail on the left, never bright
    picture.paste((255, 255, 255), (300, 20, 360, 80))  # what the tiny detector takes for a face
    focal = {"enable": True, "face_weight": 0.9, "entropy_weight": 0.15, "edges_weight": 0.0}
    (without,) = run(app, picture, Auto_focal_point_crop=focal, to=(100, 100)).images
    assert not np.all(np.asarray(without) == 255, axis=-1).any()  # no detector: the detail wins
    detector = app.paths.gfpgan_dir / "detection_Resnet50_Final.pth"
    write_bright_spot_detector(detector)
    try:
        (with_faces,) = run(app, picture, Auto_focal_point_crop=focal, to=(100, 100)).images
    finally:
        detector.unlink()
    white = np.all(np.asarray(with_faces) == 255, axis=-1)
    assert white.sum() >= 50 * 50  # the "face" is in the crop


def test_a_target_too_large_to_hold_is_refused_before_any_resize(app):
    with pytest.raises(InvalidRequestError, match="too large"):
        run(app, noisy(64, 200), Split_oversized_images={"enable": True}, to=(8192, 16384))


def test_batch_from_directory_turns_raw_pictures_into_a_dataset(app):
    raw, dataset = app.paths.data_dir / "raw", app.paths.data_dir / "dataset"
    raw.mkdir()
    noisy(64, 200, seed=1).save(raw / "tall.png")
    noisy(300, 100, seed=2).save(raw / "wide.jpg")
    noisy(80, 80, seed=3).save(raw / "square.png")
    request = ExtrasRequest(
        mode=DIRECTORY,
        input_dir="raw",
        output_dir="dataset",
        show_results=False,
        args=args(
            app,
            Auto_focal_point_crop={"enable": True},
            Create_flipped_copies={"enable": True},
            Split_oversized_images={"enable": True},
        ),
    )
    result = app.extras.run(request)
    files = sorted(p.name for p in dataset.iterdir())
    # focal crop runs first (A1111's order), so no picture is left oversized to split; each has a mirror
    assert files == ["square-1.png", "square.png", "tall-1.png", "tall.png", "wide-1.png", "wide.png"]
    assert {Image.open(dataset / f).size for f in files} == {(64, 64)}
    assert result.images == [] and len(result.saved) == 6
    mirrored = np.asarray(Image.open(dataset / "square-1.png"))
    assert np.array_equal(mirrored, np.asarray(ImageOps.mirror(Image.open(dataset / "square.png"))))


def test_batch_uploads_keep_every_tile(app):
    result = app.extras.run(
        ExtrasRequest(
            mode=BATCH,
            images=[noisy(64, 200), noisy(64, 64)],
            args=args(app, Split_oversized_images={"enable": True}),
            save=False,
        )
    )
    assert [i.size for i in result.images] == [(64, 64)] * 5


def test_the_scripts_can_be_called_as_extensions_call_them():
    pp = PostprocessedImage(noisy(64, 200))
    pp.shared.target_width = pp.shared.target_height = 64
    script("Split oversized images").process(pp, enable=True, split_threshold=0.5, overlap_ratio=0.2)
    assert pp.image.size == (64, 64) and len(pp.extra_images) == 3
    assert all(isinstance(x, PostprocessedImage) for x in pp.extra_images)
