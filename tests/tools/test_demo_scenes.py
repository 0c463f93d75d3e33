"""The demo model's procedural dataset and the reader that measures it: every rendered scene is read
back as drawn (also blurred and noisy, as a model draws), so the reader's figures are the model's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tools.demo_model.reading import Reading, read_image
from tools.demo_model.scenes import COLOURS, POSITIONS, SHAPES, Scene, render


def test_scenes_are_a_pure_function_of_the_seed_and_cover_the_vocabulary():
    scenes = [Scene.from_seed(s) for s in range(400)]
    assert scenes == [Scene.from_seed(s) for s in range(400)]
    assert {s.colour for s in scenes} == set(COLOURS) and {s.shape for s in scenes} == set(SHAPES)
    assert {s.position for s in scenes} == set(POSITIONS)
    assert all(s.colour != s.background for s in scenes)
    assert render(scenes[0]).tobytes() == render(scenes[0]).tobytes()


def test_captions_say_what_is_drawn():
    scene = Scene("red", "circle", "left", "small", "blue")
    assert scene.caption() == "a small red circle on the left, blue background"
    assert Scene("red", "star", "center", "large", "white").caption() == (
        "a large red star in the center, white background"
    )


@pytest.mark.parametrize("degrade", ["none", "blur", "noise"])
def test_every_rendered_scene_is_read_back(degrade):
    rng = np.random.default_rng(0)
    for seed in range(120):
        scene = Scene.from_seed(seed)
        image = render(scene, 128)
        if degrade == "blur":
            image = image.filter(ImageFilter.GaussianBlur(2))
        elif degrade == "noise":
            noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, (128, 128, 3))
            image = Image.fromarray(noisy.clip(0, 255).astype(np.uint8))
        assert read_image(image) == Reading(scene.colour, scene.shape, scene.position, scene.background), seed


def test_an_empty_picture_shows_no_shape():
    assert read_image(Image.new("RGB", (128, 128), COLOURS["green"])) == Reading(None, None, None, "green")


def test_shapes_drawn_in_blocks_as_a_vae_draws_them_are_read_by_their_kind():
    """A VAE that draws in 8-pixel cells gives staircase outlines (the perimeter of a pixelated circle is
    that of a square); the reader must still see the circle."""
    for seed in range(120):
        scene = Scene.from_seed(seed)
        blocky = render(scene, 32).resize((128, 128), Image.Resampling.NEAREST)
        assert read_image(blocky).shape == scene.shape, seed
