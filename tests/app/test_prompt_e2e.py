"""Prompt syntax end to end: emphasis, BREAK, AND, prompt editing and alternation reach the image.

Through the A1111 HTTP API (TestClient, real App with the tiny demo checkpoint); once through the web
UI in Chromium in tests/browser/test_prompt_browser.py. Images are 64x64 with 2-3 steps (20 where
prompt editing must show) and fixed seeds, so every request takes well under a second. Clip skip
through `override_settings` is covered in tests/app/test_app.py.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from modules.sumi.services.jobs.infotext import parse_infotext
from tests.app_support import post_txt2img, with_random_weight_model

BASE = {"steps": 3, "width": 64, "height": 64, "seed": 4321, "sampler_name": "Euler", "cfg_scale": 7}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with_random_weight_model(data)
    app = make_module_app(data, "--api", "--nowebui")
    app.options.set("samples_save", False)
    app.options.set("grid_save", False)
    return app


def post(client, **fields) -> dict:
    return post_txt2img(client, {**BASE, **fields})


def pixels_of(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        assert image.size == (64, 64)
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def image(client, prompt: str, **fields) -> np.ndarray:
    return pixels_of(post(client, prompt=prompt, **fields)["images"][0])


def infotext(client, prompt: str, **fields) -> str:
    return json.loads(post(client, prompt=prompt, **fields)["info"])["infotexts"][0]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b))


def close(a: np.ndarray, b: np.ndarray, levels: int = 2) -> bool:
    return int(np.abs(a - b).max()) <= levels


def differs(a: np.ndarray, b: np.ndarray, levels: int = 3) -> bool:
    """Clearly different: more than float rounding could explain."""
    return int(np.abs(a - b).max()) >= levels


@pytest.fixture(scope="module")
def fox(client) -> np.ndarray:
    return image(client, "fox")


@pytest.fixture(scope="module")
def hat(client) -> np.ndarray:
    return image(client, "hat")


# --- emphasis -------------------------------------------------------------------------------------


def test_the_tiny_model_tells_prompts_apart(client, fox, hat):
    assert differs(fox, hat)
    assert same(image(client, "fox"), fox)  # fixed seed: deterministic


def test_emphasis_weight_changes_the_image_and_weight_one_does_not(client, fox):
    assert differs(image(client, "(fox:1.5)"), fox)
    assert same(image(client, "(fox:1.0)"), fox)


def test_emphasis_ignore_drops_weights_and_is_written_to_the_infotext(client, fox):
    # parse_infotext fills in "Emphasis: Original" when the key is absent (A1111), so read the text
    assert "Emphasis:" not in infotext(client, "(fox:1.5)")
    override = {"override_settings": {"emphasis": "Ignore"}}
    body = post(client, prompt="(fox:1.5)", **override)
    assert same(pixels_of(body["images"][0]), fox)  # "(fox:1.5)" parses to "fox" at weight 1
    text = json.loads(body["info"])["infotexts"][0]
    assert "Emphasis: Ignore" in text and parse_infotext(text)["Emphasis"] == "Ignore"
    # no brackets in the prompt: the key is not written even though the mode is not Original
    assert "Emphasis:" not in infotext(client, "fox", **override)
    # the override lasted one request only
    assert "Emphasis:" not in infotext(client, "(fox:1.5)")


def test_emphasis_modes_none_and_no_norm(client, fox):
    def run(prompt: str, mode: str) -> np.ndarray:
        return image(client, prompt, override_settings={"emphasis": mode})

    # The demo model's CLIP output has a mean of about 0, so "Original" rescales by a near-arbitrary
    # factor (A1111's formula, faithfully); a plain 1.5 on one token barely moves its image: use 3.
    no_norm = run("(fox:3)", "No norm")
    assert differs(no_norm, fox) and differs(no_norm, image(client, "(fox:3)"))
    assert same(run("fox", "No norm"), fox)  # weight 1 everywhere: nothing to scale
    literal = run("(fox:1.5)", "None")  # brackets are text: different tokens
    assert differs(literal, fox) and differs(literal, image(client, "(fox:1.5)"))
    assert differs(run("fox BREAK hat", "None"), image(client, "fox BREAK hat"))  # BREAK is a word
    assert same(run("fox", "None"), fox)
    negative = infotext(client, "fox", negative_prompt="(blurry)", override_settings={"emphasis": "None"})
    assert "Emphasis: None" in negative  # brackets in the negative prompt count too


# --- BREAK and AND --------------------------------------------------------------------------------


def test_break_starts_a_new_chunk_and_changes_the_image(client):
    assert differs(image(client, "fox BREAK hat"), image(client, "fox hat"))


def test_and_combines_prompts(client):
    both = image(client, "a fox AND a hat")
    assert differs(both, image(client, "a fox")) and differs(both, image(client, "a hat"))


def test_an_and_part_of_weight_zero_contributes_nothing(client):
    # the UNet batch has one more row, so allow float rounding of the batched forward
    assert close(image(client, "a fox AND a hat:0"), image(client, "a fox"))


def test_and_weights_scale_the_guidance(client):
    # one part of weight 0.5 at CFG 14 is the very same guidance as the plain prompt at CFG 7
    assert same(image(client, "a fox:0.5", cfg_scale=14), image(client, "a fox", cfg_scale=7))
    # two equal parts add up: as CFG 14 (two UNet rows: allow rounding)
    assert close(image(client, "a fox AND a fox", cfg_scale=7), image(client, "a fox", cfg_scale=14))
    negative = image(client, "a fox AND a hat:-1")
    assert differs(negative, image(client, "a fox AND a hat")) and differs(negative, image(client, "a fox"))


# --- prompt editing and alternation ---------------------------------------------------------------
# The tiny random UNet listens to the text mostly at the first, noisiest model calls, and editing can
# only switch after call 1 (A1111's off-by-one: `[a:b:1]` uses `a` for calls 0 and 1). With 3 steps the
# switch then lands at timestep 0 and moves the image by under one uint8 level, so these tests use 20
# steps and a higher CFG scale, where the later calls visibly count (still well under a second).

TIMELINE = {"steps": 20, "cfg_scale": 15}


@pytest.fixture(scope="module")
def timeline(client) -> tuple[np.ndarray, np.ndarray]:
    return image(client, "fox", **TIMELINE), image(client, "hat", **TIMELINE)


def test_prompt_editing_switches_mid_way(client, timeline):
    fox, hat = timeline
    edited = image(client, "[fox:hat:1]", **TIMELINE)  # calls 0 and 1 use fox, calls 2.. use hat
    assert differs(edited, fox) and differs(edited, hat)
    assert same(image(client, "[fox:hat:99]", **TIMELINE), fox)  # clamped to the steps: never switches
    assert same(image(client, "[fox:hat:0]", **TIMELINE), hat)  # switched from the start
    assert same(image(client, "[hat:1.0]", **TIMELINE), image(client, "", **TIMELINE))  # 1.0 = the end


def test_alternation_works(client, timeline):
    fox, hat = timeline
    alternating = image(client, "[fox|hat]", **TIMELINE)
    assert differs(alternating, fox) and differs(alternating, hat)
    assert same(image(client, "[fox|fox]", **TIMELINE), fox)


def test_a_negative_prompt_with_a_schedule(client):
    def run(negative: str) -> np.ndarray:
        return image(client, "fox", negative_prompt=negative, **TIMELINE)

    blurry, sharp = run("blurry"), run("sharp")
    scheduled = run("[blurry:sharp:1]")
    assert differs(scheduled, blurry) and differs(scheduled, sharp)
    assert differs(run("[blurry|sharp]"), blurry)
    # AND is not split in the negative prompt: it is literal text there, and does not fail
    assert differs(run("blurry AND sharp"), blurry)


# --- bad input never breaks a job -------------------------------------------------------------------

ODD_PROMPTS = [
    "((a",
    "a]]]",
    ":::",
    "(a:99999)",
    "(a:-5)",
    "fox " * 2500,  # 10,000 characters: dozens of 75-token chunks
    "\x00\x07\x1b",
    "🦊🎩",
    "AND AND",
    "[a|b|]",
    "[:::]",
    "\\",
    "\\\\",
    "BREAK BREAK",
    "<lora:x:1>",
    "[a:b:c]",
    "[a:b:-1]",
    "[a:b:1e309]",
    "(a BREAK b)",
    "a AND b:1e309",
    "a AND b:-1",
    "|",
    "",
    "   ",
]


@pytest.mark.parametrize("where", ["prompt", "negative_prompt"])
def test_odd_prompts_give_images_in_one_batch(client, where):
    assert len(ODD_PROMPTS) <= 32  # opt max_batch_size
    other = "negative_prompt" if where == "prompt" else "prompt"
    fields = {where: ODD_PROMPTS, other: "fox", "batch_size": len(ODD_PROMPTS), "steps": 2}
    body = post(client, **fields)
    info = json.loads(body["info"])
    assert len(body["images"]) == len(ODD_PROMPTS)  # no grid without save_images (A1111)
    for b64 in body["images"]:
        pixels_of(b64)
    key = "all_prompts" if where == "prompt" else "all_negative_prompts"
    assert info[key] == ODD_PROMPTS
    assert post(client, prompt="fox", steps=2)["images"]  # the server keeps serving
