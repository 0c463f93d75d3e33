"""Dataset preparation operations on pictures: splitting into overlapping tiles, the auto-sized crop's
choice of size, and the focal point crop (faces, entropy, corners), checked by sizes and pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.sumi.engine.imageprep.autosize import (
    MAXIMIZE_AREA,
    MINIMIZE_ERROR,
    center_crop,
    choose_size,
    proportion_error,
)
from modules.sumi.engine.imageprep.focal import (
    EDGE,
    ENTROPY,
    FACE,
    FocalWeights,
    Point,
    cover,
    crop_box,
    entropy_point,
    find_focus,
    focal_crop,
)
from modules.sumi.engine.imageprep.split import should_split, split_picture, tile_offsets


def gradient(width: int, height: int) -> Image.Image:
    """x in the red channel, y in the green: where a crop came from can be read off its pixels."""
    xs = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)
    ys = np.linspace(0, 255, height, dtype=np.float32)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([xs, ys, np.zeros_like(xs)], -1).astype(np.uint8))


def flat_with_noise_patch(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    pixels = np.full((height, width, 3), 120, np.uint8)
    x1, y1, x2, y2 = box
    pixels[y1:y2, x1:x2] = np.random.default_rng(0).integers(0, 256, (y2 - y1, x2 - x1, 3))
    return Image.fromarray(pixels)


# -- split ----------------------------------------------------------------------------------------------
def test_tiles_cover_the_length_evenly_with_the_asked_overlap():
    assert tile_offsets(1024, 512, 0.2) == [0, 256, 512]
    assert tile_offsets(512, 512, 0.2) == [0]
    for length, tile, overlap in ((2000, 512, 0.0), (1300, 512, 0.5), (700, 256, 0.9)):
        offsets = tile_offsets(length, tile, overlap)
        assert offsets[0] == 0 and offsets[-1] + tile == length
        gaps = np.diff(offsets)
        assert (tile - gaps >= tile * overlap - 1).all()  # neighbours share at least the overlap


def test_only_pictures_elongated_past_the_threshold_are_split():
    tall = gradient(100, 300)
    assert should_split(tall, 64, 64, 0.5)  # three times as tall as the square target
    assert not should_split(tall, 64, 64, 0.3)
    assert not should_split(gradient(100, 100), 64, 64, 1.0)  # same proportions: never
    assert should_split(gradient(300, 100), 64, 64, 0.5)  # wide pictures too


def test_a_tall_picture_becomes_target_sized_tiles_from_top_to_bottom():
    tiles = split_picture(gradient(64, 256), 32, 32, overlap_ratio=0.2)
    assert all(t.size == (32, 32) for t in tiles) and len(tiles) == 5
    tops = [int(np.asarray(t)[0, 0, 1]) for t in tiles]  # the green channel is the row
    assert tops == sorted(tops) and tops[0] <= 2  # Lanczos blurs the edge a little
    assert int(np.asarray(tiles[-1])[-1, 0, 1]) >= 250  # the last tile reaches the bottom


def test_a_wide_picture_is_split_left_to_right():
    tiles = split_picture(gradient(300, 60), 40, 30, overlap_ratio=0.0)
    assert all(t.size == (40, 30) for t in tiles) and len(tiles) == 4  # 150 px wide once scaled
    lefts = [int(np.asarray(t)[0, 0, 0]) for t in tiles]
    assert lefts == sorted(lefts) and lefts[0] <= 2


# -- auto-sized crop ------------------------------------------------------------------------------------
def test_the_largest_size_within_the_error_threshold_is_chosen():
    bounds = {"min_dim": 384, "max_dim": 768, "min_area": 64 * 64, "max_area": 640 * 640}
    assert choose_size(1000, 1000, **bounds, objective=MAXIMIZE_AREA, threshold=0.1) == (640, 640)
    # 3:2 exactly is 768x512 (error 0), and it is also the largest area in bounds
    assert choose_size(1500, 1000, **bounds, objective=MAXIMIZE_AREA, threshold=0.1) == (768, 512)
    wide = choose_size(1600, 1000, **bounds, objective=MAXIMIZE_AREA, threshold=0.1)
    assert wide is not None and proportion_error(1600, 1000, wide) <= 0.1
    assert choose_size(3000, 1000, **bounds, objective=MAXIMIZE_AREA, threshold=0.1) is None  # 3:1 fits none


def test_minimize_error_prefers_the_closest_proportions():
    bounds = {"min_dim": 384, "max_dim": 768, "min_area": 64 * 64, "max_area": 768 * 768}
    area_first = choose_size(1400, 1000, **bounds, objective=MAXIMIZE_AREA, threshold=0.2)
    error_first = choose_size(1400, 1000, **bounds, objective=MINIMIZE_ERROR, threshold=0.2)
    assert area_first is not None and error_first is not None
    assert proportion_error(1400, 1000, error_first) < proportion_error(1400, 1000, area_first)
    assert error_first[0] * error_first[1] < area_first[0] * area_first[1]
    with pytest.raises(ValueError, match="objective"):
        choose_size(10, 10, **bounds, objective="Biggest", threshold=0.2)


def test_center_crop_keeps_the_middle():
    cropped = center_crop(gradient(300, 100), 64, 64)
    assert cropped.size == (64, 64)
    red = np.asarray(cropped)[:, :, 0]
    assert red[:, 0].mean() > 80 and red[:, -1].mean() < 175  # only the middle third of x survives


# -- focal point crop -------------------------------------------------------------------------------------
def test_the_picture_is_scaled_to_cover_the_target():
    assert cover(gradient(200, 100), 64, 64).size == (128, 64)
    assert cover(gradient(100, 200), 96, 64).size == (96, 192)
    assert cover(gradient(40, 40), 64, 128).size == (128, 128)


def test_crop_box_centres_on_the_focus_inside_the_picture():
    assert crop_box((300, 100), Point(150, 50), 100, 100) == (100, 0, 200, 100)
    assert crop_box((300, 100), Point(10, 50), 100, 100) == (0, 0, 100, 100)
    assert crop_box((300, 100), Point(290, 90), 100, 100) == (200, 0, 300, 100)


def test_entropy_finds_the_detailed_stretch_of_a_long_picture():
    picture = flat_with_noise_patch(400, 100, (280, 0, 380, 100))
    point = entropy_point(picture, 100, 100)
    assert point is not None and 300 <= point.x <= 360 and point.y == 50
    assert entropy_point(gradient(100, 100), 100, 100) is None  # nothing to slide


def test_the_crop_follows_the_detail_and_faces_outweigh_it():
    picture = flat_with_noise_patch(400, 100, (300, 10, 380, 90))
    (crop,) = focal_crop(picture, 100, 100, FocalWeights(face=0.0, entropy=1.0, edges=0.0))
    assert crop.size == (100, 100) and np.asarray(crop).std() > 40  # the noisy patch is inside

    def face_on_the_left(_image):
        return [(10.0, 20.0, 50.0, 70.0)]

    weights = FocalWeights(face=1.0, entropy=0.0, edges=0.0)
    focus = find_focus(picture, 100, 100, weights, face_on_the_left)
    assert set(focus.findings) == {FACE} and focus.findings[FACE].weight == 1.0
    assert focus.point == Point(30.0, 20 + 50 * 0.33)
    (crop,) = focal_crop(picture, 100, 100, weights, face_on_the_left)
    assert np.asarray(crop).std() == 0  # the flat left end, away from the noise


def test_kinds_that_find_nothing_give_their_weight_to_the_others():
    picture = flat_with_noise_patch(400, 100, (300, 10, 380, 90))
    focus = find_focus(picture, 100, 100, FocalWeights(0.9, 0.15, 0.5), lambda _image: [])
    assert FACE not in focus.findings
    assert focus.findings[ENTROPY].weight == pytest.approx(0.15 / 0.65)
    assert focus.findings[EDGE].weight == pytest.approx(0.5 / 0.65)
    blank = find_focus(Image.new("RGB", (300, 100), "grey"), 100, 100, FocalWeights(0, 0, 1), None)
    assert blank.findings == {} and blank.point == Point(150, 50)  # nothing at all: the middle


def test_the_debug_image_shows_the_scaled_picture_with_the_crop_marked():
    picture = flat_with_noise_patch(400, 100, (300, 10, 380, 90))
    crop, debug = focal_crop(picture, 50, 50, FocalWeights(0, 1, 0), debug=True)
    assert crop.size == (50, 50) and debug.size == (200, 50)
    green = np.all(np.asarray(debug) == (0, 255, 0), axis=-1)
    assert green.any() and not np.all(np.asarray(picture.resize((200, 50))) == (0, 255, 0), axis=-1).any()
