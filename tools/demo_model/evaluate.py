"""How well the demo model draws what the prompt says, measured as `docs/demo-model.md` reports it:

    python -m tools.demo_model.evaluate modules/sumi/assets/sumi-demo-shapes.safetensors --seeds 20

Over a grid of prompts ("a red circle on the left, blue background") that covers every colour, shape
and position, each drawn with `--seeds` seeds at 128x128 (Euler a, 20 steps, CFG 7, A1111's defaults),
every image is read by `reading.read_image` and compared with its prompt. Prints the share of images
whose shape colour, position, kind and background match, and writes a contact sheet (one seed per
prompt) and the figures as JSON when asked.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.generate import BatchRequest, generate
from modules.sumi.engine.model import SDModel

from .architecture import IMAGE_SIDE
from .reading import colour_shares, read_image
from .scenes import COLOURS, POSITIONS, SHAPES, Scene

ATTRIBUTES = ("colour", "shape", "position", "background")


def prompt_grid(count: int = 40) -> list[Scene]:
    """`count` scenes stepping through colours, shapes and positions together, so each value appears about
    equally often and in many combinations; the background is the next colour but one."""
    colours, positions = list(COLOURS), list(POSITIONS)
    return [
        Scene(
            colours[i % 8],
            SHAPES[(i // 2) % 4],
            positions[i % 5],
            "large",
            colours[(i % 8 + 2 + i // 8) % 8] if (i % 8 + 2 + i // 8) % 8 != i % 8 else colours[(i + 1) % 8],
        )
        for i in range(count)
    ]


def draw(model: SDModel, prompts: list[str], seeds: list[int], **options) -> list[Image.Image]:
    """Images of `prompts` (one per seed) as the txt2img tab draws them with A1111's default settings."""
    request = BatchRequest(
        prompts=prompts,
        negative_prompts=[options.pop("negative", "")] * len(prompts),
        seeds=seeds,
        width=IMAGE_SIDE,
        height=IMAGE_SIDE,
        **options,
    )
    return generate(model, request, progress_bar=False).images


@dataclass
class Tally:
    images: int = 0
    right: Counter = field(default_factory=Counter)
    hits: dict[str, Counter] = field(default_factory=dict)  # attribute -> wanted value -> images right
    asked: dict[str, Counter] = field(default_factory=dict)  # attribute -> wanted value -> images

    def add(self, scene: Scene, image: Image.Image) -> None:
        reading = read_image(image)
        self.images += 1
        for name in ATTRIBUTES:
            wanted = getattr(scene, name)
            hit = getattr(reading, name) == wanted
            self.right[name] += hit
            self.hits.setdefault(name, Counter())[wanted] += hit
            self.asked.setdefault(name, Counter())[wanted] += 1

    def shares(self) -> dict[str, float]:
        return {name: self.right[name] / self.images for name in ATTRIBUTES}

    def shares_by_value(self, name: str) -> dict[str, float]:
        return {value: self.hits[name][value] / asked for value, asked in self.asked[name].items()}


def evaluate(
    model: SDModel, scenes: list[Scene], seeds: int, batch: int = 20
) -> tuple[Tally, list[Image.Image]]:
    tally, sheet = Tally(), []
    for scene in scenes:
        images: list[Image.Image] = []
        for start in range(0, seeds, batch):
            count = min(batch, seeds - start)
            images += draw(model, [scene.caption_with(size=False)] * count, list(range(start, start + count)))
        for image in images:
            tally.add(scene, image)
        sheet.append(images[0])
    return tally, sheet


EFFECTS: list[tuple[str, str, str, str]] = [  # (what, prompt, negative prompt, colour measured)
    ("weight (red:1.5)", "a (red:1.5) circle, white background", "", "red"),
    ("weight (red:1.0)", "a red circle, white background", "", "red"),
    ("weight (red:0.5)", "a (red:0.5) circle, white background", "", "red"),
    ("no negative prompt", "a circle, white background", "", "purple"),  # the colour it picks most
    ("negative prompt 'purple'", "a circle, white background", "purple", "purple"),
    ("red square", "a red square, white background", "", "blue"),
    ("editing [red:blue:0.3]", "a [red:blue:0.3] square, white background", "", "blue"),
    ("editing [red:blue:0.6]", "a [red:blue:0.6] square, white background", "", "blue"),
    ("blue square", "a blue square, white background", "", "blue"),
    ("AND: red left", "a red circle on the left, white background", "", "red"),
    (
        "AND: + blue right",
        "a red circle on the left AND a blue circle on the right, white background",
        "",
        "blue",
    ),
]


def prompt_effects(model: SDModel, seeds: int) -> list[tuple[str, str, float, list[Image.Image]]]:
    """(what, colour, its mean share of the pixels over `seeds` images, the images) for each of EFFECTS."""
    out = []
    for what, prompt, negative, colour in EFFECTS:
        images = draw(model, [prompt] * seeds, list(range(seeds)), negative=negative)
        share = sum(colour_shares(image)[colour] for image in images) / seeds
        out.append((what, colour, share, images))
    return out


def contact_sheet(images: list[Image.Image], columns: int = 10) -> Image.Image:
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * IMAGE_SIDE, rows * IMAGE_SIDE), "white")
    for i, image in enumerate(images):
        sheet.paste(image, ((i % columns) * IMAGE_SIDE, (i // columns) * IMAGE_SIDE))
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--sheet", type=Path, help="write one image per prompt here (PNG)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--effects", type=Path, help="measure the prompt language's effects; their sheet here"
    )
    args = parser.parse_args(argv)
    model = load_checkpoint(args.model)
    scenes = prompt_grid(args.prompts)
    tally, sheet = evaluate(model, scenes, args.seeds)
    shares = tally.shares()
    for name in ATTRIBUTES:
        per = ", ".join(f"{value} {share:.0%}" for value, share in tally.shares_by_value(name).items())
        print(f"{name:10s} {shares[name]:.1%}   ({per})")
    if args.sheet:
        contact_sheet(sheet).save(args.sheet)
    effects = []
    if args.effects:
        effects = prompt_effects(model, args.seeds)
        for what, colour, share, _ in effects:
            print(f"{what:28s} {colour} {share:.1%}")
        contact_sheet([image for *_, images in effects for image in images[:5]], columns=5).save(args.effects)
    if args.json:
        figures = {
            "images": tally.images,
            "prompts": [s.caption_with(size=False) for s in scenes],
            "shares": shares,
        }
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
