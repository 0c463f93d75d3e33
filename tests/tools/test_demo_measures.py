"""The learning tests' pictures and readers: each reader gives the figure it promises on rendered
pictures (stripes, a ring, a hue turn, brightness), so a learning test's figures are the model's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tools.demo_model.measures import (
    colour_centre,
    colour_hue,
    coolness,
    elongation,
    hole_share,
    hollow_share,
    hue_shift,
    mean_brightness,
    shape_hue,
    shape_overlap,
    stripe_energy,
)
from tools.demo_model.reading import read_image
from tools.demo_model.scenes import COLOURS, POSITIONS, SHAPES, Scene, render
from tools.demo_model.variants import (
    graded,
    new_shape_mask,
    render_new_shape,
    rotate_colours,
    scaled_brightness,
    striped,
)

BRIGHT_SCENES = [Scene(c, s, "center", "large", "white") for c, s in (("red", "circle"), ("blue", "star"))]


def test_stripes_have_a_large_stripe_energy_and_plain_scenes_a_small_one():
    for seed in range(40):
        plain = render(Scene.from_seed(seed))
        assert stripe_energy(plain) < 12, seed
    for scene in BRIGHT_SCENES:
        assert stripe_energy(striped(render(scene))) > 80
        blurred = striped(render(scene)).filter(ImageFilter.GaussianBlur(2))
        assert stripe_energy(blurred) > 60  # a model's soft stripes still count
    assert stripe_energy(striped(render(BRIGHT_SCENES[0])).rotate(90)) < 12  # vertical stripes do not


def test_a_ring_shows_a_hole_and_the_known_shapes_none():
    ring = render_new_shape("ring", "red", "white")
    assert hole_share(ring) == pytest.approx(0.25, abs=0.04)
    for shape in SHAPES:
        assert hole_share(render(Scene("red", shape, "center", "large", "white"))) < 0.01, shape
    assert hole_share(Image.new("RGB", (128, 128), COLOURS["white"])) == 0.0


def test_a_soft_ring_shows_a_hollow_and_the_known_shapes_none():
    ring = render_new_shape("ring", "red", "white")
    assert hollow_share(ring) == pytest.approx(0.25, abs=0.04)
    assert hollow_share(ring.filter(ImageFilter.GaussianBlur(3))) > 0.15  # a model's soft hole still counts
    muddy = np.asarray(ring, dtype=np.float32).copy()  # a hole half-way between background and ring,
    ys, xs = np.mgrid[:128, :128]  # as the demo draws one: hole_share counts it as shape
    hole = (ys - 63.5) ** 2 + (xs - 63.5) ** 2 < 19.5**2  # the whole hole
    muddy[hole] = np.array(COLOURS["white"]) * 0.6 + np.array(COLOURS["red"]) * 0.4
    muddy_ring = Image.fromarray(muddy.round().astype(np.uint8))
    assert hollow_share(muddy_ring) > 0.15 and hole_share(muddy_ring) < 0.01
    for seed in range(40):
        assert hollow_share(render(Scene.from_seed(seed))) < 0.01, seed
    framed = np.asarray(render(Scene("red", "circle", "center", "large", "white"))).copy()
    framed[:2], framed[-2:], framed[:, :2], framed[:, -2:] = 255, 255, 255, 255  # the demo's thin frame
    framed[:2, :, 2] = 0  # a yellow top edge shifts the edge median, not the background read inside it
    assert hollow_share(Image.fromarray(framed)) < 0.01
    assert hollow_share(Image.new("RGB", (128, 128), COLOURS["white"])) == 0.0


def test_shape_overlap_compares_outlines_wherever_the_shape_is():
    cross = new_shape_mask("cross")
    assert shape_overlap(render_new_shape("cross", "blue", "yellow"), cross) > 0.95
    assert shape_overlap(render_new_shape("cross", "blue", "yellow", position="left"), cross) > 0.95
    circle = render(Scene("blue", "circle", "right", "large", "yellow"))
    assert shape_overlap(circle, cross) < 0.75
    assert shape_overlap(Image.new("RGB", (128, 128), COLOURS["white"]), cross) == 0.0


def test_rotated_colours_turn_the_shape_hue_by_120_degrees():
    for colour, turned in (("red", "green"), ("green", "blue"), ("blue", "red")):
        image = render(Scene(colour, "square", "center", "large", "white"))
        rotated = rotate_colours(image)
        assert read_image(rotated).colour == turned
        before, after = shape_hue(image), shape_hue(rotated)
        assert before is not None and after is not None
        assert hue_shift(before, after) == pytest.approx(120, abs=15), colour
    assert shape_hue(render(Scene("white", "square", "center", "large", "black"))) is None
    assert hue_shift(350, 10) == 20 and hue_shift(10, 350) == -20


def test_colour_hue_reads_the_shape_on_a_neutral_background_even_with_a_tinted_frame():
    for colour, hue in (("red", 0), ("yellow", 54), ("green", 124), ("blue", 233), ("purple", 283)):
        image = render(Scene(colour, "circle", "left", "small", "white"))
        assert hue_shift(hue, colour_hue(image) or -1.0) == pytest.approx(0, abs=6), colour
        framed = np.asarray(image).copy()
        framed[[0, -1], :] = framed[:, [0, -1]] = (200, 165, 120)  # a drawing's tinted edge
        framed[1:-1, 1:-1] = np.clip(framed[1:-1, 1:-1].astype(int) + 10, 0, 255)
        assert hue_shift(hue, colour_hue(Image.fromarray(framed)) or -1.0) == pytest.approx(0, abs=6), colour
    turned = colour_hue(rotate_colours(render(Scene("red", "star", "center", "large", "black"))))
    assert hue_shift(0, turned or -1.0) == pytest.approx(120, abs=8)
    assert colour_hue(render(Scene("white", "square", "center", "large", "black"))) is None


def test_brightness_follows_the_scale():
    image = render(Scene("red", "circle", "center", "large", "blue"))
    base = mean_brightness(image)
    assert mean_brightness(scaled_brightness(image, 0.2)) < base * 0.25
    assert mean_brightness(scaled_brightness(image, 1.8)) > base + 0.7 * (255 - base)
    assert mean_brightness(Image.fromarray(np.zeros((128, 128, 3), np.uint8))) == 0.0


def test_a_cool_grade_makes_every_scene_cooler_and_a_warm_grade_warmer():
    """Each grade moves a picture's coolness 40 % of the way to its tint's (cool 215, warm -255)."""
    for seed in range(40):
        image = render(Scene.from_seed(seed))
        plain, cool, warm = coolness(image), coolness(graded(image, "cool")), coolness(graded(image, "warm"))
        assert cool == pytest.approx(plain + 0.4 * (215 - plain), abs=1), (seed, plain, cool)
        assert warm == pytest.approx(plain + 0.4 * (-255 - plain), abs=1), (seed, plain, warm)
    assert coolness(Image.new("RGB", (8, 8), (10, 20, 250))) == 240.0


def test_the_colour_centre_is_where_the_scene_put_the_shape_of_that_colour():
    for position, (fx, fy) in POSITIONS.items():
        for size in ("large", "small"):  # a large one touches the border
            x, y = colour_centre(render(Scene("red", "square", position, size, "white")), "red")  # type: ignore[misc]
            assert abs(x - fx * 128) < 2 and abs(y - fy * 128) < 2, (position, size)
    assert colour_centre(render(Scene("red", "square", "left", "large", "white")), "blue") is None


def test_a_bar_is_elongated_and_the_known_shapes_are_not():
    for size in ("large", "small"):
        assert elongation(render_new_shape("bar", "red", "white", size=size)) > 3  # type: ignore[operator]
    for shape in SHAPES:
        assert 0.8 < elongation(render(Scene("blue", shape, "center", "large", "white"))) < 1.25, shape  # type: ignore[operator]
    assert elongation(Image.new("RGB", (128, 128), "white")) is None
