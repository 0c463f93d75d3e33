"""Procedural scenes for the demo model: one coloured shape at a position, on a plain background.

    scene = Scene.from_seed(17)
    scene.caption()        # "a small red circle on the left, blue background"
    render(scene, 128)     # the picture, drawn deterministically (anti-aliased by supersampling)

Everything is a pure function of the seed, so the dataset is the same on every machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (35, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 180),
    "orange": (245, 135, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle", "star")
POSITIONS: dict[str, tuple[float, float]] = {  # the shape's centre, as fractions of the side
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
    "center": (0.5, 0.5),
}
SIZES: dict[str, float] = {"small": 0.17, "large": 0.29}  # the shape's radius, as a fraction of the side
SUPERSAMPLE = 4
EMPTY_CAPTION_RATE = 0.1
CAPTION_DROP_RATES = {"size": 0.5, "colour": 0.1, "shape": 0.1, "where": 0.25, "background": 0.3}


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    position: str
    size: str
    background: str

    @classmethod
    def from_seed(cls, seed: int) -> Scene:
        rng = random.Random(seed)
        colour = rng.choice(list(COLOURS))
        background = rng.choice([c for c in COLOURS if c != colour])
        return cls(
            colour, rng.choice(SHAPES), rng.choice(list(POSITIONS)), rng.choice(list(SIZES)), background
        )

    def caption(self) -> str:
        return self.caption_with()

    def caption_with(
        self,
        *,
        size: bool = True,
        colour: bool = True,
        shape: bool = True,
        where: bool = True,
        background: bool = True,
    ) -> str:
        """The caption naming only the parts asked for ("a red circle", "a small shape on the left")."""
        words = [self.size] if size else []
        words += [self.colour] if colour else []
        words += [self.shape if shape else "shape"]
        text = "a " + " ".join(words)
        if where:
            text += " in the center" if self.position == "center" else f" on the {self.position}"
        return text + (f", {self.background} background" if background else "")

    def training_caption(self, rng: random.Random) -> str:
        """A caption as the demo model is trained on it: every part but the shape's noun may be left out
        (then the model draws any value for it), and one caption in ten is empty (the unconditional
        prediction classifier-free guidance needs)."""
        if rng.random() < EMPTY_CAPTION_RATE:
            return ""
        keep = {part: rng.random() >= rate for part, rate in CAPTION_DROP_RATES.items()}
        return self.caption_with(**keep)


def every_scene() -> list[Scene]:
    """Each combination of colour, shape, position, size and background (a different colour) once."""
    return [
        Scene(colour, shape, position, size, background)
        for colour in COLOURS
        for shape in SHAPES
        for position in POSITIONS
        for size in SIZES
        for background in COLOURS
        if background != colour
    ]


def render(scene: Scene, side: int = 128) -> Image.Image:
    """The scene as an RGB image `side` pixels square."""
    big = side * SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    fx, fy = POSITIONS[scene.position]
    cx, cy, r = fx * big, fy * big, SIZES[scene.size] * big
    draw.polygon(outline(scene.shape, cx, cy, r), fill=COLOURS[scene.colour])
    return image.resize((side, side), Image.Resampling.LANCZOS)


def outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """The shape's polygon around (cx, cy) with outer radius r (a circle as a 96-gon)."""
    if shape == "circle":
        return _ring(cx, cy, [r] * 96, 0.0)
    if shape == "square":
        return _ring(cx, cy, [r] * 4, math.pi / 4)
    if shape == "triangle":
        return _ring(cx, cy, [r * 1.15] * 3, -math.pi / 2, shift=r * 0.2)
    if shape == "star":
        return _ring(cx, cy, [r * 1.1, r * 0.45] * 5, -math.pi / 2)
    raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")


def _ring(
    cx: float, cy: float, radii: list[float], start: float, shift: float = 0.0
) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [
        (cx + rad * math.cos(start + i * step), cy + shift + rad * math.sin(start + i * step))
        for i, rad in enumerate(radii)
    ]
