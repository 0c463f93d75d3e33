"""The demo's canny ControlNet (trained by Sumi, tools/demo_model/train_controlnet.py), installed beside the
demo model on a fresh start and asked through the ControlNet extension's A1111 API: the shape is drawn
where the edge map has it, for a prompt that names only a colour and a shape."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.models.demo import DEMO_CONTROLNET_NAME
from tests.app_support import decode_pixels, encode_png, post_txt2img
from tools.demo_model.measures import colour_centre, colour_mask
from tools.demo_model.scenes import POSITIONS, Scene, render
from tools.demo_model.train_controlnet import canny_edges

CANDIDATE = os.environ.get("SUMI_DEMO_CONTROLNET")  # another file to measure in its place (training)
CASES = [(place, shape) for place in ("left", "right", "top", "bottom") for shape in ("circle", "square")]


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui", loaded=True)  # the demo


def _draw(client, prompt: str, control: Image.Image | None, seed: int, module: str = "none") -> Image.Image:
    """txt2img at the demo's size; with `control`, one unit of the demo ControlNet (`module` its
    preprocessor: "none" for an edge map, "canny" for a picture)."""
    units = []
    if control is not None:
        model = Path(DEMO_CONTROLNET_NAME).stem
        units = [{"enabled": True, "module": module, "model": model, "image": encode_png(control)}]
    body = {
        "prompt": prompt,
        "width": 128,
        "height": 128,
        "steps": 20,
        "cfg_scale": 7,
        "sampler_name": "Euler a",
        "seed": seed,
        "alwayson_scripts": {"controlnet": {"args": units}},
    }
    return Image.fromarray(decode_pixels(post_txt2img(client, body)["images"][0]))


def _distance(image: Image.Image, place: str) -> float:
    """How far the red shape's centre is from where the edge map has it, in pixels (the whole side when
    nothing red is drawn)."""
    centre = colour_centre(image, "red")
    if centre is None:
        return 128.0
    fx, fy = POSITIONS[place]
    return math.dist(centre, (fx * 128, fy * 128))


def _filled(scene: Scene) -> np.ndarray:
    """Where the scene's shape is (its pixels nearest the shape's colour), as a bool mask."""
    return colour_mask(render(scene), scene.colour)


def _iou(image: Image.Image, target: np.ndarray) -> float:
    """Intersection over union of the image's red pixels with `target`, where they stand."""
    drawn = colour_mask(image, "red")
    return float((drawn & target).sum() / max(1, (drawn | target).sum()))


def test_a_fresh_start_installs_the_demo_controlnet_beside_the_demo_model(app, client):
    assert (app.paths.controlnet_dir / DEMO_CONTROLNET_NAME).is_file()
    listed = client.get("/controlnet/model_list").json()["model_list"]
    assert any(name.startswith(Path(DEMO_CONTROLNET_NAME).stem) for name in listed), listed


def test_the_demo_canny_controlnet_draws_the_shape_where_the_edges_are(app, client):
    """A picture given to the canny preprocessor: a red shape is drawn where the picture's blue one is."""
    if CANDIDATE:
        shutil.copyfile(CANDIDATE, app.paths.controlnet_dir / DEMO_CONTROLNET_NAME)
        app.controlnet.models.refresh()
    with_edges, without = [], []
    for seed, (place, shape) in enumerate(CASES):
        picture = render(Scene("blue", shape, place, "large", "yellow"))  # the canny preprocessor's input
        prompt = f"a red {shape}, white background"
        with_edges.append(round(_distance(_draw(client, prompt, picture, seed, "canny"), place), 1))
        without.append(round(_distance(_draw(client, prompt, None, seed), place), 1))
    # measured (the shipped file): 0.2-2.4 px, mean 1.1, against 2.5-58.8 px, mean 30.8 without
    assert np.mean(with_edges) < 0.5 * np.mean(without), (with_edges, without)
    assert sum(w < o for w, o in zip(with_edges, without, strict=True)) >= 6, (with_edges, without)


def test_the_demo_canny_controlnet_draws_the_outline_of_the_edges(app, client):
    """A prompt that names no shape ("a red shape") draws the edge map's shape, where it is."""
    if CANDIDATE:
        shutil.copyfile(CANDIDATE, app.paths.controlnet_dir / DEMO_CONTROLNET_NAME)
        app.controlnet.models.refresh()
    with_edges, without = [], []
    for seed, shape in enumerate(["circle", "square", "triangle", "star"] * 2):
        edges = Image.fromarray(canny_edges(Scene("blue", shape, "center", "large", "yellow"))).convert("RGB")
        prompt = "a red shape, white background"
        target = _filled(Scene("blue", shape, "center", "large", "yellow"))
        a, b = _draw(client, prompt, edges, seed), _draw(client, prompt, None, seed)
        with_edges.append(round(_iou(a, target), 2))
        without.append(round(_iou(b, target), 2))
    # measured (the shipped file): 0.68-0.89, mean 0.81, against 0.12-0.89, mean 0.37 without
    assert min(with_edges) > 0.5 and np.mean(with_edges) > np.mean(without) + 0.25, (with_edges, without)


def test_detectmap_autosaving_writes_each_units_map_under_its_preprocessor(app, client):
    """sd-webui-controlnet's "Allow detectmap auto saving": the canny map (the one the job returns after
    its image) is written to <samples folder>/detected_maps/canny/, and nothing is written while it is off."""
    picture = render(Scene("blue", "circle", "left", "large", "yellow"))
    model = Path(DEMO_CONTROLNET_NAME).stem
    unit = {"enabled": True, "module": "canny", "model": model, "image": encode_png(picture)}
    body = {"prompt": "a red circle", "width": 128, "height": 128, "steps": 2, "seed": 3, "save_images": True}
    body["alwayson_scripts"] = {"controlnet": {"args": [unit]}}
    folder = app.paths.resolve(app.options.outdir_txt2img_samples) / "detected_maps" / "canny"
    post_txt2img(client, body)
    assert not folder.exists()
    app.options.data["control_net_detectmap_autosaving"] = True
    try:
        returned = post_txt2img(client, body)["images"]
    finally:
        app.options.data["control_net_detectmap_autosaving"] = False
    (saved,) = sorted(folder.glob("*-canny.png"))
    assert np.array_equal(np.asarray(Image.open(saved).convert("RGB")), decode_pixels(returned[-1]))
