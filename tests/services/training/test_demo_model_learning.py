"""What training teaches the shipped demo model, read from the pictures it then draws (tools/demo_model/
measures.py), through the paths users run: a folder of pictures, the Train tab's services, the trained
file in its models folder and `<lora:...>` / `<hypernet:...>` in the prompt of a real txt2img job.

Each test compares with the model's drawing without the trained file and asks for at least about half
the effect measured when it was written (docs/demo-model.md, "What training does to it"), so a
retrained demo of the same architecture still passes and a trainer that learns nothing fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img
from modules.sumi.services.models.demo import DEMO_NAME
from modules.sumi.services.training.a1111_settings import (
    EmbeddingTrainingSettings,
    HypernetworkTrainingSettings,
)
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings
from modules.sumi.services.training.lora_settings import LoraTrainingSettings
from tools.demo_model.architecture import IMAGE_SIDE
from tools.demo_model.measures import coolness, elongation, mean_brightness, stripe_energy
from tools.demo_model.reading import read_image
from tools.demo_model.scenes import SHAPES, Scene, render
from tools.demo_model.variants import graded, render_new_shape, scaled_brightness, striped

TEMPLATES = {
    "filewords.txt": "[filewords]\n",
    "name.txt": "a [name]\n",
    "colour_name.txt": "a [filewords] [name], white background\n",  # the demo's caption order
}
SIDE = IMAGE_SIDE
pytestmark = pytest.mark.long_file  # about five minutes: started first (tests/conftest.py)


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    templates = tmp_path_factory.mktemp("templates")
    for name, text in TEMPLATES.items():
        (templates / name).write_text(text, encoding="utf-8")
    data = tmp_path_factory.mktemp("learning")
    return make_module_app(
        data, "--nowebui", "--textual-inversion-templates-dir", str(templates), loaded=True
    )


def draw(app, prompt: str, count: int = 4, seed: int = 0) -> list[Image.Image]:
    """`count` images (seeds seed, seed+1, ...) as txt2img draws them with A1111's defaults."""
    p = StableDiffusionProcessingTxt2Img(
        prompt=prompt,
        seed=seed,
        batch_size=count,
        width=SIDE,
        height=SIDE,
        steps=20,
        sampler_name="Euler a",
        cfg_scale=7,
        do_not_save_grid=True,
        do_not_save_samples=True,
    )
    return app.runner.txt2img(p).images


def write_folder(folder: Path, pictures: list[tuple[Image.Image, str]]) -> str:
    """The pictures as PNGs with their captions in .txt files; the folder's name (the data root)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, (image, caption) in enumerate(pictures):
        image.save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(caption, encoding="utf-8")
    return folder.name


def train_lora(app, name: str, pictures: list[tuple[Image.Image, str]], **changes) -> None:
    """A rank-4 LoRA (and conv rank 4) of the UNet named `name`, trained by the LoRA service on the
    pictures; `changes` override the settings."""
    settings = dict(
        output_name=name,
        data_root=write_folder(app.paths.data_dir / name, pictures),
        rank=4,
        alpha=4.0,
        conv_rank=4,
        conv_alpha=4.0,
        train_text_encoder=False,
        learn_rate="4e-3",
        min_snr_gamma=5.0,
        batch_size=4,
        training_width=SIDE,
        training_height=SIDE,
        seed=1,
    )
    assert app.lora_training.train(LoraTrainingSettings(**(settings | changes))).view().status == "done"
    assert (app.paths.lora_dir / f"{name}.safetensors").is_file()


# -- LoRA ---------------------------------------------------------------------------------------------------
STRIPE_SCENES = [
    Scene(colour, SHAPES[i % 4], "center", "large", ("white", "yellow", "orange", "green")[i % 4])
    for i, colour in enumerate(["red", "blue", "purple", "black"] * 2)
]
STRIPE_PROMPTS = ["a red circle, white background", "a blue square, yellow background"]


def test_a_lora_trained_on_striped_pictures_draws_stripes_at_weight_1_and_none_at_0(app):
    pictures = [(striped(render(s)), s.caption_with(size=False, where=False)) for s in STRIPE_SCENES]
    train_lora(app, "stripes", pictures, steps=80)

    def energy(weight: int) -> list[float]:
        images = [i for p in STRIPE_PROMPTS for i in draw(app, f"{p} <lora:stripes:{weight}>")]
        return [round(stripe_energy(i), 1) for i in images]

    off, on = energy(0), energy(1)
    # measured (grey levels at the stripe period; the pictures: 50-98) on the retrained demo: 14.8 at :1
    # against 2.5 at :0 (training seeds 2 and 3: 12.1 and 14.6; the first demo drew 32.0 against 3.5)
    assert np.mean(on) > np.mean(off) + 6 and np.mean(on) > 3 * np.mean(off), (on, off)


# -- offset noise -------------------------------------------------------------------------------------------
BRIGHTNESS_SCENES = [
    Scene(colour, SHAPES[i % 4], "center", "large", background)
    for i, (colour, background) in enumerate(
        [("red", "black"), ("blue", "orange"), ("purple", "yellow"), ("green", "white")]
        + [("yellow", "purple"), ("orange", "red"), ("black", "blue"), ("white", "green")]
    )
]
BRIGHTNESS_PROMPTS = ["a red circle, white background", "a green triangle, purple background"]


def test_offset_noise_lets_a_fine_tune_reach_much_darker_and_brighter_pictures(app):
    """Noise with a zero mean per picture leaves a picture's mean brightness almost unnoised, so a model
    never learns to change it (Guttenberg's "diffusion with offset noise"): LoRAs trained on the demo's
    scenes made dark (x0.2) or bright draw them little darker or brighter than before without offset
    noise, and much nearer the pictures with it. Debiased estimation (which weights up the noisy steps,
    where the mean is decided) makes the difference hold for every training seed tried."""

    def mean_drawn(name: str) -> float:
        images = [i for p in BRIGHTNESS_PROMPTS for i in draw(app, f"{p} <lora:{name}:1>", count=3)]
        return float(np.mean([mean_brightness(i) for i in images]))

    means = {}
    for look, factor in (("dark", 0.2), ("bright", 1.8)):
        pictures = [
            (scaled_brightness(render(s), factor), s.caption_with(size=False, where=False))
            for s in BRIGHTNESS_SCENES
        ]
        for offset in (0.0, 0.1):
            name = f"{look}-offset-{offset}"
            train_lora(app, name, pictures, steps=100, offset_noise=offset, debiased_estimation=True)
            means[name] = round(mean_drawn(name), 1)
    dark, bright = means["dark-offset-0.1"], means["bright-offset-0.1"]
    dark_without, bright_without = means["dark-offset-0.0"], means["bright-offset-0.0"]
    # measured (mean grey level of 6 images; the demo draws 152 without a LoRA; the pictures: 30 and 230):
    # without offset noise dark 130, bright 159; with offset noise 0.1 dark 91, bright 236 (training
    # seeds 2 and 3: 101/160 and 128/159 without, 27/230 and 44/223 with)
    assert dark < dark_without - 18, means
    assert bright > bright_without + 30, means
    assert bright - dark > (bright_without - dark_without) + 60, means


# -- textual inversion ----------------------------------------------------------------------------------
BAR_COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black"]
BAR_PROMPTS = ["a red sumibar, white background", "a green sumibar, white background"]
BAR_PROMPTS += ["a purple sumibar, white background"]


def test_an_embedding_trained_on_a_new_shape_makes_its_name_draw_that_shape(app):
    """Bars (wide and flat) are a shape the demo never saw: its shapes are as wide as high. An embedding
    trained on bars in 7 colours, with the colour in the caption ("a red <name>, white background"), so
    the embedding has to carry only the shape, makes its name draw flat, wide shapes."""
    pictures = [
        (render_new_shape("bar", colour, "white", size=("large", "small")[i % 2]), colour)
        for i, colour in enumerate(BAR_COLOURS)
    ]
    root = write_folder(app.paths.data_dir / "bars", pictures)
    app.a1111_training.create_embedding("sumibar", 2, init_text="square")
    settings = EmbeddingTrainingSettings(
        embedding_name="sumibar",
        data_root=root,
        training_width=SIDE,
        training_height=SIDE,
        steps=200,
        batch_size=4,
        learn_rate="0.01",
        template_filename="colour_name.txt",
        create_image_every=0,
        save_embedding_every=0,
        seed=1,
    )
    assert app.a1111_training.train_embedding(settings).view().status == "done"

    def widths(prompts: list[str]) -> list[float]:
        return [round(elongation(i) or 0.0, 2) for p in prompts for i in draw(app, p)]

    bars, squares = widths(BAR_PROMPTS), widths([p.replace("sumibar", "square") for p in BAR_PROMPTS])
    # measured (12 images; a drawn bar reads ~3.3, the demo's shapes ~1): with the embedding median 2.21,
    # 10 of 12 over 1.3 (training seeds 2 and 3: 1.62 with 8, 2.93 with 11); with "square" median 1.0,
    # at most 1.23. "a blue <name>" still draws blue squares and stars (not asked here)
    assert np.median(bars) > 1.4 and sum(w > 1.3 for w in bars) >= 7, (bars, squares)
    assert max(squares) < 1.3, squares


# -- DreamBooth ---------------------------------------------------------------------------------------------
INSTANCE_PROMPTS = [f"a sks square, {colour}, white background" for colour in ("red", "green", "purple")]
CLASS_PROMPT = "a square, white background"


def dreambooth(app, name: str, prior: bool) -> tuple[list[Image.Image], list[Image.Image]]:
    """Fine-tune the demo as "a sks square" on bars (the instance), with or without prior preservation
    (8 class images of CLASS_PROMPT drawn by the demo); what it then draws for the instance prompts and
    for the class prompt."""
    pictures = [
        (
            render_new_shape("bar", colour, "white", size=("large", "small")[i % 2]),
            f"{colour}, white background",
        )
        for i, colour in enumerate(BAR_COLOURS)
    ]
    write_folder(app.paths.data_dir / "sks-bars", pictures)
    classes = {"class_data_root": "class-squares", "class_prompt": CLASS_PROMPT, "num_class_images": 8}
    settings = FinetuneTrainingSettings(
        output_name=name,
        data_root="sks-bars",
        instance_prompt="a sks square",
        learn_rate="1e-4",
        steps=150,
        batch_size=4,
        min_snr_gamma=5.0,
        training_width=SIDE,
        training_height=SIDE,
        seed=1,
        save_state=False,
        **(classes if prior else {}),
    )
    assert app.finetune_training.train(settings).view().status == "done"
    app.settings.set({"sd_model_checkpoint": name})
    try:
        return [i for p in INSTANCE_PROMPTS for i in draw(app, p)], draw(app, CLASS_PROMPT, count=12)
    finally:
        app.settings.set({"sd_model_checkpoint": DEMO_NAME})


def test_dreambooth_with_prior_preservation_learns_the_instance_and_keeps_the_class(app):
    """DreamBooth teaches "a sks square" to be a bar (a shape the demo never saw); with prior
    preservation "a square" still draws what it drew (its colour, and no bars), without it the class
    takes the instance's shape and loses its colours."""
    before_class = draw(app, CLASS_PROMPT, count=12)
    instance, kept_class = dreambooth(app, "sks-prior", prior=True)
    _, drifted_class = dreambooth(app, "sks-no-prior", prior=False)

    def bars(images: list[Image.Image]) -> int:
        return sum((elongation(i) or 0.0) > 1.8 for i in images)

    def same_colour(images: list[Image.Image]) -> int:
        pairs = zip(images, before_class, strict=True)
        return sum(read_image(a).colour == read_image(b).colour for a, b in pairs)

    widths = [round(elongation(i) or 0.0, 2) for i in instance]
    figures = {
        "instance": widths,
        "bars": (bars(kept_class), bars(drifted_class)),
        "colour": (same_colour(kept_class), same_colour(drifted_class)),
    }
    # measured (training seed 1; seed 2 in brackets): instance elongation median 3.84 (4.1) against 1.19
    # before training; the class prompt's 12 images: bars 0 (1) with prior preservation, 8 without;
    # the same colour as before in 10 (4) with, 0 without
    assert np.median(widths) > 2.0, figures
    assert bars(kept_class) <= 3 and bars(kept_class) <= bars(drifted_class) - 3, figures
    assert same_colour(kept_class) >= same_colour(drifted_class) + 3, figures


# -- hypernetwork -------------------------------------------------------------------------------------------
GRADE_SCENES = [
    Scene(colour, SHAPES[i % 4], "center", "large", background)
    for i, (colour, background) in enumerate(
        [("red", "white"), ("blue", "yellow"), ("green", "black"), ("yellow", "purple"), ("purple", "white")]
        + [("orange", "blue"), ("black", "green"), ("white", "red"), ("red", "black"), ("green", "white")]
        + [("blue", "orange"), ("purple", "yellow")]
    )
]
GRADE_PROMPTS = [f"a {shape}, white background" for shape in ("red circle", "green triangle", "blue square")]


def test_a_hypernetwork_trained_on_colour_graded_pictures_grades_what_it_draws_that_way(app):
    """Hypernetworks are how A1111 users train a look: one trained (A1111's Train tab) on the demo's
    scenes graded cool (every pixel 40 % of the way to a light blue), with their plain captions, makes
    the demo draw cooler pictures; one trained on the same scenes graded warm draws them much warmer
    than the cool one does."""

    def coolness_drawn(suffix: str) -> float:
        return float(np.mean([coolness(i) for p in GRADE_PROMPTS for i in draw(app, p + suffix, count=3)]))

    drawn = {"none": coolness_drawn("")}
    for grade in ("cool", "warm"):
        pictures = [(graded(render(s), grade), s.caption_with(size=False, where=False)) for s in GRADE_SCENES]
        root = write_folder(app.paths.data_dir / f"graded-{grade}", pictures)
        name = f"grade-{grade}"
        dim = int(app.models.get().sd.unet.config.cross_attention_dim)
        app.a1111_training.create_hypernetwork(name, [dim], layer_structure="1, 2, 1", weight_init="Normal")
        settings = HypernetworkTrainingSettings(
            hypernetwork_name=name,
            data_root=root,
            template_filename="filewords.txt",
            training_width=SIDE,
            training_height=SIDE,
            steps=200,
            batch_size=4,
            learn_rate="3e-4",
            offset_noise=0.1,
            min_snr_gamma=5.0,
            debiased_estimation=True,
            create_image_every=0,
            save_hypernetwork_every=0,
            seed=1,
        )
        assert app.a1111_training.train_hypernetwork(settings).view().status == "done"
        drawn[grade] = round(coolness_drawn(f" <hypernet:{name}:1>"), 1)
    # measured (mean blue minus mean red of 9 images; training seeds 1, 2, 3): none -3.4; cool 33.4, 28.5,
    # 32.1; warm 0.3, -8.8, -5.1 (the red circle's white background turns cream, but the blue square's
    # turns blue with either)
    assert drawn["cool"] > drawn["none"] + 14, drawn
    assert drawn["cool"] > drawn["warm"] + 16, drawn
