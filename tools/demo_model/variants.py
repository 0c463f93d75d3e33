"""Pictures the demo model never saw, for the learning tests (tests/*/test_demo_model_learning.py):
a new shape, stripes over a scene, rotated colours, darker or brighter scenes.

    render_new_shape("ring", "white", "black")   # a shape outside SHAPES, drawn like scenes.render
    striped(render(scene))                        # horizontal dark bands across the whole picture
    rotate_colours(render(scene))                 # red -> green -> blue -> red (a channel rotation)
    graded(render(scene), "cool")                 # a colour grade: every pixel moved towards a tint

Each is deterministic, so the tests' datasets are the same on every machine.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .scenes import COLOURS, POSITIONS, SIZES, SUPERSAMPLE

NEW_SHAPES = ("ring", "cross", "bar")
STRIPE_PERIOD = 32  # pixels from one dark band to the next (4 bands over 128 pixels)
STRIPE_DARKNESS = 0.25  # a dark band keeps this share of the picture's brightness
ROTATED = {"red": "green", "green": "blue", "blue": "red"}  # what rotate_colours makes of each colour
GRADES: dict[str, tuple[int, int, int]] = {"cool": (40, 90, 255), "warm": (255, 120, 0)}  # graded's tints
GRADE_AMOUNT = 0.4  # how far graded moves each pixel towards its tint


def new_shape_mask(kind: str, side: int = 128, size: str = "large", position: str = "center") -> np.ndarray:
    """Where `kind` covers a `side`-pixel picture (bool [side, side]), anti-aliased coverage >= 1/2."""
    big = side * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    fx, fy = POSITIONS[position]
    _draw(ImageDraw.Draw(canvas), kind, fx * big, fy * big, SIZES[size] * big, 255, 0)
    small = canvas.resize((side, side), Image.Resampling.BOX)
    return np.asarray(small) >= 128


def render_new_shape(
    kind: str,
    colour: str,
    background: str,
    side: int = 128,
    size: str = "large",
    position: str = "center",
) -> Image.Image:
    """One shape of NEW_SHAPES on a plain background, drawn as scenes.render draws the known ones."""
    big = side * SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLOURS[background])
    fx, fy = POSITIONS[position]
    _draw(
        ImageDraw.Draw(image),
        kind,
        fx * big,
        fy * big,
        SIZES[size] * big,
        COLOURS[colour],
        COLOURS[background],
    )
    return image.resize((side, side), Image.Resampling.LANCZOS)


def _draw(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill, hole) -> None:
    if kind == "ring":  # a disc with a hole of half its radius
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=hole)
    elif kind == "cross":  # a plus sign with arms a third of its width
        arm = r / 3
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=fill)
    elif kind == "bar":  # a horizontal bar, as wide as the shape and 0.3 of that high
        draw.rectangle((cx - r, cy - r * 0.3, cx + r, cy + r * 0.3), fill=fill)
    else:
        raise ValueError(f"unknown new shape {kind!r}; expected one of {', '.join(NEW_SHAPES)}")


def striped(image: Image.Image, period: int = STRIPE_PERIOD) -> Image.Image:
    """`image` with horizontal dark bands: every other half period of rows darkened, shape and all."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    rows = np.arange(pixels.shape[0])
    dark = (rows % period) >= period // 2
    pixels[dark] *= STRIPE_DARKNESS
    return Image.fromarray(pixels.round().astype(np.uint8))


def rotate_colours(image: Image.Image) -> Image.Image:
    """The channels rotated (r, g, b) -> (b, r, g): a hue turn of 120 degrees that maps the dataset's
    red to green, green to blue and blue to red and keeps white and black."""
    r, g, b = image.convert("RGB").split()
    return Image.merge("RGB", (b, r, g))


def scaled_brightness(image: Image.Image, factor: float) -> Image.Image:
    """Every channel times `factor` (< 1 darker) or, above 1, moved towards white by `factor - 1`."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    if factor <= 1:
        out = pixels * factor
    else:
        out = pixels + (255 - pixels) * min(factor - 1, 1.0)
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))


def graded(image: Image.Image, grade: str, amount: float = GRADE_AMOUNT) -> Image.Image:
    """A colour grade as photographers apply one: every pixel moved `amount` of the way towards the
    grade's tint (GRADES: "cool" a light blue, "warm" an orange), the whole picture bluer or warmer."""
    return Image.blend(image.convert("RGB"), Image.new("RGB", image.size, GRADES[grade]), amount)
