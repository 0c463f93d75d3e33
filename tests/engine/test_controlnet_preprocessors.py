"""ControlNet preprocessors and control-map sizing behave as sd-webui-controlnet's (v1.1.455)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modules.sumi.engine.controlnet.image_fit import (
    PreprocessorError,
    ResizeMode,
    border_median_colour,
    fit_to_target,
    high_quality_resize,
    parse_resize_mode,
    pixel_perfect_resolution,
    to_control_tensor,
    to_rgb,
)
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor, list_preprocessors
from modules.sumi.engine.errors import InvalidRequestError
from tests.fixtures.tiny_annotators import edge_photo


def _scaled_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    k = resolution / min(height, width)
    return round(height * k), round(width * k)


# --- canny and the other model-free preprocessors -------------------------------------------------


@pytest.mark.parametrize("resolution", [100, 320])
def test_canny_equals_cv2_canny_on_the_image_scaled_and_padded_to_the_processor_resolution(resolution):
    image = edge_photo(200, 300)
    height, width = _scaled_size(200, 300, resolution)
    interpolation = cv2.INTER_CUBIC if resolution > 200 else cv2.INTER_AREA
    scaled = cv2.resize(image, (width, height), interpolation=interpolation)
    padded = np.pad(scaled, [(0, -height % 64), (0, -width % 64), (0, 0)], mode="edge")
    edges = cv2.Canny(padded, 60, 170)[:height, :width]

    result = get_preprocessor("canny").run(image, resolution, 60, 170)

    assert result.dtype == np.uint8 and result.shape == (height, width, 3)
    for channel in range(3):
        np.testing.assert_array_equal(result[:, :, channel], edges)


def test_none_returns_the_input_unchanged():
    image = edge_photo(40, 56)
    np.testing.assert_array_equal(get_preprocessor("none").run(image), image)


def test_invert_is_255_minus_the_image():
    image = edge_photo(40, 56)
    np.testing.assert_array_equal(get_preprocessor("invert").run(image), 255 - image)


def test_threshold_gives_only_black_and_white_by_the_darkest_channel():
    image = edge_photo(64, 64)
    result = get_preprocessor("threshold").run(image, 64, 100)
    assert set(np.unique(result)) <= {0, 255}
    np.testing.assert_array_equal(result[:, :, 0] == 255, image.min(axis=2) > 100)


def test_scribble_xdog_and_lineart_standard_find_the_drawn_line():
    image = np.full((128, 128, 3), 255, dtype=np.uint8)
    cv2.line(image, (10, 64), (118, 64), (0, 0, 0), 3)
    for name in ("scribble_xdog", "lineart_standard"):
        result = get_preprocessor(name).run(image, 128)
        assert result[64, 64].min() > 100, name
        assert result[10:40].max() == 0 and result[90:].max() == 0, name


def test_shuffle_is_deterministic_for_a_seed_and_varies_between_seeds():
    image = edge_photo(80, 120)
    shuffle = get_preprocessor("shuffle")
    first = shuffle.run(image, seed=7)
    np.testing.assert_array_equal(first, shuffle.run(image, seed=7))
    assert not np.array_equal(first, shuffle.run(image, seed=8))


def test_tile_resample_down_samples_by_the_rate_and_keeps_the_image_below_1_1():
    image = edge_photo(100, 150)
    tile = get_preprocessor("tile_resample")
    assert tile.run(image, -1, 2.0).shape == (50, 75, 3)
    np.testing.assert_array_equal(tile.run(image, -1, 1.05), image)


def test_blur_gaussian_blurs_the_scaled_image():
    image = edge_photo(64, 64)
    expected = cv2.GaussianBlur(image, (0, 0), 4.0)
    np.testing.assert_array_equal(get_preprocessor("blur_gaussian").run(image, 64, 4.0), expected)


_MODEL_FREE = [p.name for p in list_preprocessors() if p.model_free]


def _expected_size(name: str, height: int, width: int) -> tuple[int, int]:
    if name in (
        "none",
        "invert",
        "recolor_luminance",
        "recolor_intensity",
        "tile_resample",
        "tile_colorfix",
        "tile_colorfix+sharp",
        "inpaint",
        "inpaint_only",
        "reference_only",
        "reference_adain",
        "reference_adain+attn",
    ):
        return height, width
    if name == "shuffle":
        return _scaled_size(height, width, 512)
    return _scaled_size(height, width, 192)


@pytest.mark.parametrize("name", _MODEL_FREE)
def test_each_model_free_preprocessor_returns_uint8_rgb_of_the_expected_size(name):
    result = get_preprocessor(name).run(edge_photo(90, 150), 192)
    assert result.dtype == np.uint8
    assert result.shape == (*_expected_size(name, 90, 150), 3)


# --- registry -------------------------------------------------------------------------------------


def test_lookup_by_label_by_internal_name_by_old_name_and_in_any_case():
    assert get_preprocessor("depth_midas").name == "depth"
    assert get_preprocessor("depth").label == "depth_midas"
    assert get_preprocessor("invert (from white bg & black line)").name == "invert"
    assert get_preprocessor("hed").label == "softedge_hed"
    assert get_preprocessor("lineart").label == "lineart_realistic"
    assert get_preprocessor("segmentation").label == "seg_ufade20k"
    assert get_preprocessor("normal_map").label == "normal_midas"
    assert get_preprocessor("fake_scribble").label == "scribble_hed"
    assert get_preprocessor("clip_vision").label == "t2ia_style_clipvision"  # the extension's name for it
    assert get_preprocessor("  CANNY ").name == "canny"
    assert get_preprocessor("None").name == "none"


def test_unknown_preprocessor_is_a_clear_invalid_request_naming_it_and_the_known_ones():
    with pytest.raises(
        InvalidRequestError, match=r"Unknown ControlNet preprocessor 'cany'; known: none, .*canny"
    ):
        get_preprocessor("cany")


@pytest.mark.parametrize(
    ("name", "why"), [("depth_hand_refiner", "graphormer"), ("normal_dsine", "use normal_bae")]
)
def test_the_extensions_preprocessors_sumi_lacks_say_why_instead_of_unknown(name, why):
    with pytest.raises(InvalidRequestError, match=rf"'{name}' is not available in Sumi: .*{why}"):
        get_preprocessor(name)


def test_list_starts_with_none_then_follows_the_extensions_priority_order():
    labels = [p.label for p in list_preprocessors()]
    assert labels[0] == "none"
    assert (
        labels.index("canny")
        < labels.index("invert (from white bg & black line)")
        < labels.index("threshold")
    )
    assert len(labels) == len(set(labels))
    assert len({p.name for p in list_preprocessors()}) == len(labels)


def test_canny_sliders_match_the_extension():
    canny = get_preprocessor("canny")
    assert canny.uses_resolution and canny.resolution.default == 512
    assert (canny.resolution.minimum, canny.resolution.maximum, canny.resolution.step) == (64, 2048, 8)
    assert (canny.threshold_a.label, canny.threshold_a.default) == ("Low Threshold", 100)
    assert (canny.threshold_b.label, canny.threshold_b.default) == ("High Threshold", 200)
    assert get_preprocessor("invert").uses_resolution is False
    assert get_preprocessor("none").threshold_a is None


def test_sliders_out_of_range_or_minus_one_fall_back_to_their_defaults():
    canny = get_preprocessor("canny")
    args = canny.resolve(-1, -1, 999)
    assert (args.resolution, args.threshold_a, args.threshold_b) == (512, 100, 200)
    assert canny.resolve(5000, 0, 256).resolution == 512
    assert canny.resolve(640, 30, 90).threshold_b == 90
    image = edge_photo(100, 100)
    np.testing.assert_array_equal(canny.run(image, 64, -1, 1000), canny.run(image, 64, 100, 200))
    assert get_preprocessor("threshold").resolve(-1, float("nan")).threshold_a == 127


def test_exact_resolution_keeps_a_pixel_perfect_value_outside_the_slider_range():
    canny = get_preprocessor("canny")
    assert canny.run(edge_photo(100, 100), 40).shape == (512, 512, 3)
    assert canny.run(edge_photo(100, 100), 40, exact_resolution=True).shape == (40, 40, 3)


# --- annotator weights ----------------------------------------------------------------------------


def test_an_annotator_without_its_weights_names_the_file_the_folder_and_the_download(tmp_path):
    with pytest.raises(PreprocessorError) as info:
        get_preprocessor("depth_midas").run(edge_photo(64, 64), annotator_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"Preprocessor 'depth_midas' needs midas/dpt_hybrid-midas-501f0c75.pt in {tmp_path}; it is not there."
    )
    assert "Download it from https://huggingface.co/" in message and message.endswith("put it there.")


def test_an_annotator_needing_several_files_lists_each_missing_one(tmp_path):
    (tmp_path / "openpose").mkdir()
    (tmp_path / "openpose" / "yolox_l.onnx").write_bytes(b"x")
    with pytest.raises(PreprocessorError, match="needs openpose/dw-ll_ucoco_384.onnx in") as info:
        get_preprocessor("dw_openpose_full").run(edge_photo(64, 64), annotator_dir=tmp_path)
    assert "yolox_l.onnx" not in str(info.value)


def test_an_annotator_without_a_folder_says_none_was_set():
    with pytest.raises(
        PreprocessorError, match=r"needs hed/ControlNetHED.pth in the annotator folder \(none was set\)"
    ):
        get_preprocessor("softedge_hed").run(edge_photo(64, 64))


def test_an_annotator_with_its_weights_says_the_network_is_not_available(tmp_path):
    (tmp_path / "densepose_r50_fpn_dl.torchscript").write_bytes(b"x")
    with pytest.raises(PreprocessorError, match="needs a network that Sumi does not run yet"):
        get_preprocessor("densepose").run(edge_photo(64, 64), annotator_dir=tmp_path)


def test_every_preprocessor_either_runs_here_or_names_its_weight_files_or_package():
    for p in list_preprocessors():
        runs_here = p.model_free or p.package is not None
        assert (p.detect is not None) == runs_here or p.network is not None, p.name
        assert all(f.url.startswith("https://") and f.url.endswith(f.name) for f in p.annotator_files), p.name


# --- input checks ---------------------------------------------------------------------------------


def test_gray_becomes_rgb_and_rgba_is_composited_over_white():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(to_rgb(gray), np.stack([gray] * 3, axis=2))
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    rgb = to_rgb(rgba)
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[1, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((4, 4, 2), dtype=np.uint8),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_images_that_are_not_8_bit_gray_rgb_or_rgba_are_refused_clearly(image):
    with pytest.raises(PreprocessorError, match="The ControlNet image"):
        get_preprocessor("canny").run(image)


def test_huge_images_and_extreme_aspect_ratios_are_refused_before_allocating():
    huge = np.broadcast_to(np.zeros((1, 1, 3), dtype=np.uint8), (20000, 8, 3))
    with pytest.raises(PreprocessorError, match="too large"):
        get_preprocessor("none").run(huge)
    with pytest.raises(PreprocessorError, match="too large"):
        get_preprocessor("canny").run(np.zeros((1, 9000, 3), dtype=np.uint8), 2048)


# --- pixel perfect and resize modes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_hw", "target_hw", "mode", "expected"),
    [
        ((512, 768), (768, 1024), "Crop and Resize", 768),  # max(1.5, 1.333) * 512
        ((512, 768), (768, 1024), "Resize and Fill", 683),  # min(...) * 512 = 682.67
        ((512, 768), (768, 1024), "Just Resize", 768),
        ((1000, 500), (512, 512), "Crop and Resize", 512),  # 1.024 * 500
        ((1000, 500), (512, 512), "Resize and Fill", 256),  # 0.512 * 500
        ((300, 300), (512, 512), 2, 512),
    ],
)
def test_pixel_perfect_resolution_matches_hand_computed_values(raw_hw, target_hw, mode, expected):
    assert pixel_perfect_resolution(raw_hw, target_hw, mode) == expected


def test_resize_mode_names_aliases_and_indices_are_accepted_and_unknown_ones_refused():
    assert parse_resize_mode("just resize") is ResizeMode.JUST_RESIZE
    assert parse_resize_mode("Inner Fit (Scale to Fit)") is ResizeMode.CROP_AND_RESIZE
    assert parse_resize_mode("Scale to Fit (Inner Fit)") is ResizeMode.CROP_AND_RESIZE
    assert parse_resize_mode("Outer Fit (Shrink to Fit)") is ResizeMode.RESIZE_AND_FILL
    assert parse_resize_mode("Envelope (Outer Fit)") is ResizeMode.RESIZE_AND_FILL
    assert [parse_resize_mode(i) for i in (0, 1, 2)] == list(ResizeMode)
    with pytest.raises(PreprocessorError, match="Unknown ControlNet resize mode 'Stretch'"):
        parse_resize_mode("Stretch")
    with pytest.raises(PreprocessorError):
        parse_resize_mode(3)


def _stripes(height: int, width: int) -> np.ndarray:
    """Red, green and blue vertical thirds."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    image[:, :third, 0] = 255
    image[:, third : 2 * third, 1] = 255
    image[:, 2 * third :, 2] = 255
    return image


def test_just_resize_stretches_to_the_target():
    result = fit_to_target(_stripes(50, 150), 90, 60, "Just Resize")
    assert result.shape == (60, 90, 3)
    assert result[:, :30, 0].min() == 255 and result[:, 60:, 2].min() == 255


def test_crop_and_resize_scales_to_cover_and_keeps_the_centre():
    result = fit_to_target(_stripes(50, 150), 100, 100, "Crop and Resize")
    assert result.shape == (100, 100, 3)
    assert (result == [0, 255, 0]).all()


def test_resize_and_fill_scales_to_fit_and_pads_with_the_border_median_colour():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)
    image[0, :] = image[-1, :] = image[:, 0] = image[:, -1] = (10, 20, 30)
    result = fit_to_target(image, 100, 100, "Resize and Fill")
    assert result.shape == (100, 100, 3)
    assert (result[:25] == [10, 20, 30]).all() and (result[75:] == [10, 20, 30]).all()
    np.testing.assert_array_equal(result[25:75], image)
    assert border_median_colour(image).tolist() == [10, 20, 30]


def test_few_colour_maps_keep_their_palette_and_binary_edges_stay_binary():
    segments = cv2.resize(_stripes(6, 9), (45, 30), interpolation=cv2.INTER_NEAREST)
    segments[10:20, 10:20] = (7, 7, 7)
    upscaled = high_quality_resize(segments, 101, 67)
    palette = {tuple(c) for c in segments.reshape(-1, 3)}
    assert {tuple(c) for c in upscaled.reshape(-1, 3)} <= palette
    edges = get_preprocessor("canny").run(edge_photo(120, 160), 120)
    bigger = high_quality_resize(edges, 320, 240)
    assert set(np.unique(bigger)) <= {0, 255}
    assert np.count_nonzero(bigger) < 3 * np.count_nonzero(edges)  # thinned: lines do not double in width


def test_to_control_tensor_is_1x3xhxw_in_0_to_1():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 51)
    tensor = to_control_tensor(image, "cpu", torch.float16)
    assert tensor.shape == (1, 3, 4, 6) and tensor.dtype == torch.float16
    assert tensor[0, :, 0, 0].float().tolist() == pytest.approx([1.0, 0.0, 0.2], abs=1e-3)


_maps = st.sampled_from(["noise", "binary", "few"]).flatmap(
    lambda kind: st.tuples(st.just(kind), st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
)


@settings(max_examples=150, deadline=None)
@given(
    source=_maps,
    width=st.integers(1, 80),
    height=st.integers(1, 80),
    mode=st.sampled_from([*ResizeMode, 0, 1, 2, "Envelope (Outer Fit)", "Inner Fit (Scale to Fit)"]),
)
def test_fit_to_target_always_returns_exactly_the_target_size(source, width, height, mode):
    kind, map_h, map_w, seed = source
    rng = np.random.default_rng(seed)
    if kind == "noise":
        detected = rng.integers(0, 256, (map_h, map_w, 3), dtype=np.uint8)
    elif kind == "binary":
        detected = (rng.random((map_h, map_w)) > 0.8).astype(np.uint8) * 255
    else:
        detected = rng.integers(0, 4, (map_h, map_w, 3), dtype=np.uint8) * 60
    result = fit_to_target(detected, width, height, mode)
    assert result.shape == (height, width, 3) and result.dtype == np.uint8
