"""The refiner through POST /sdapi/v1/txt2img and /img2img with two tiny checkpoints: A1111's fields
`refiner_checkpoint` / `refiner_switch_at`, its always-on script args, the infotext, and the job's model
and the `sd_model_checkpoint` setting unchanged afterwards."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.app_support import decode_pixels, post_txt2img
from tests.fixtures.tiny_models import write_tiny_checkpoint

BODY = {
    "prompt": "a red fox",
    "negative_prompt": "blurry",
    "steps": 6,
    "width": 64,
    "height": 64,
    "seed": 9,
    "sampler_name": "Euler a",
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("refiner_api")
    folder = data / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    write_tiny_checkpoint(folder / "base.safetensors", "SD1", seed=1)
    write_tiny_checkpoint(folder / "fine.safetensors", "SD1", seed=2)
    write_tiny_checkpoint(folder / "xl.safetensors", "SDXL", seed=3)
    write_tiny_checkpoint(folder / "sd_xl_refiner.safetensors", "SDXL-refiner", seed=4)
    (data / "config.json").write_text(json.dumps({"sd_model_checkpoint": "base.safetensors"}))
    return make_module_app(data, "--api", "--nowebui", loaded=True)


def infotext(body: dict) -> str:
    return json.loads(body["info"])["infotexts"][0]


def test_the_refiner_takes_over_and_is_written_in_the_infotext(client, app):
    setting = client.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    plain = post_txt2img(client, BODY)
    refined = post_txt2img(client, {**BODY, "refiner_checkpoint": "fine", "refiner_switch_at": 0.5})
    text = infotext(refined)
    fine_hash = app.checkpoints.match("fine").hash
    assert f"Refiner: fine [{fine_hash}], Refiner switch at: 0.5" in text
    assert "Model: base" in text
    assert (decode_pixels(plain["images"][0]) != decode_pixels(refined["images"][0])).any()
    # The job's model is active again and the setting is what it was (A1111's SkipWritingToConfig).
    assert app.models.active.checkpoint.name == "base.safetensors"
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == setting
    assert "Refiner" not in infotext(plain)


def test_the_refiner_runs_only_the_steps_after_the_switch(client):
    """From 0.5 on the refiner's model decides the rest; fully refined (0.0) is the refiner alone."""
    only_fine = post_txt2img(client, {**BODY, "override_settings": {"sd_model_checkpoint": "fine"}})
    half = post_txt2img(client, {**BODY, "refiner_checkpoint": "fine", "refiner_switch_at": 0.5})
    whole = post_txt2img(client, {**BODY, "refiner_checkpoint": "fine", "refiner_switch_at": 0.0})
    assert (decode_pixels(whole["images"][0]) == decode_pixels(only_fine["images"][0])).all()
    assert (decode_pixels(half["images"][0]) != decode_pixels(only_fine["images"][0])).any()


def test_the_always_on_script_args_do_what_the_fields_do(client):
    fields = post_txt2img(client, {**BODY, "refiner_checkpoint": "fine", "refiner_switch_at": 0.5})
    script = post_txt2img(client, {**BODY, "alwayson_scripts": {"Refiner": {"args": [True, "fine", 0.5]}}})
    assert fields["images"][0] == script["images"][0]
    off = post_txt2img(
        client,
        {
            **BODY,
            "refiner_checkpoint": "fine",
            "alwayson_scripts": {"refiner": {"args": [False, "fine", 0.5]}},
        },
    )
    assert "Refiner" not in infotext(off)


@pytest.mark.parametrize(
    "extra",
    [
        {"refiner_checkpoint": "base"},
        {"refiner_checkpoint": "fine", "refiner_switch_at": 1.0},
        {"refiner_checkpoint": "None"},
    ],
)
def test_no_switch_is_the_plain_image(client, extra):
    """The job's own checkpoint as refiner, switch at 1 (never reached) and "None" change nothing (A1111)."""
    plain = post_txt2img(client, BODY)
    same = post_txt2img(client, {**BODY, **extra})
    assert same["images"][0] == plain["images"][0] and "Refiner" not in infotext(same)


def test_an_unknown_refiner_is_a_400_naming_the_choices(client):
    body = post_txt2img(client, {**BODY, "refiner_checkpoint": "nope"}, 400)
    assert "nope" in body["detail"] and "fine.safetensors" in body["detail"]
    post_txt2img(client, {**BODY, "refiner_checkpoint": "fine", "refiner_switch_at": 1.5}, 422)


def test_an_sdxl_refiner_may_continue_an_sd1_model_as_in_a1111(client):
    body = post_txt2img(client, {**BODY, "refiner_checkpoint": "xl", "refiner_switch_at": 0.5})
    assert decode_pixels(body["images"][0]).shape == (64, 64, 3) and "Refiner: xl" in infotext(body)


def test_sdxl_base_with_the_sdxl_refiner(client, app):
    body = {**BODY, "override_settings": {"sd_model_checkpoint": "xl"}}
    plain = post_txt2img(client, body)
    refined = post_txt2img(client, {**body, "refiner_checkpoint": "sd_xl_refiner", "refiner_switch_at": 0.5})
    assert "Refiner: sd_xl_refiner [" in infotext(refined) and "Model: xl" in infotext(refined)
    assert plain["images"][0] != refined["images"][0]
    assert app.models.active.checkpoint.name == "xl.safetensors"  # the job's model, as the job ends


def test_img2img_takes_the_refiner_too(client, app):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 60, 30)).save(buffer, format="PNG")
    image = base64.b64encode(buffer.getvalue()).decode()
    body = {**BODY, "init_images": [image], "denoising_strength": 0.8}
    plain = client.post("/sdapi/v1/img2img", json=body).json()
    refined = client.post(
        "/sdapi/v1/img2img", json={**body, "refiner_checkpoint": "fine", "refiner_switch_at": 0.6}
    ).json()
    assert "Refiner: fine" in infotext(refined) and "Refiner switch at: 0.6" in infotext(refined)
    assert plain["images"][0] != refined["images"][0]
    assert app.models.active.checkpoint.name == "base.safetensors"


@pytest.mark.parametrize("sampler", ["DPM++ 3M SDE", "UniPC", "Restart"])
def test_samplers_sumi_runs_itself_hand_over_to_the_refiner_mid_run(client, app, sampler):
    """A1111 switches inside its denoiser for every sampler; so does Sumi for the samplers it runs
    itself: switching at 0 is the refiner alone, at 0.5 a mix, written in the infotext."""
    body = {**BODY, "sampler_name": sampler}
    only_fine = post_txt2img(client, {**body, "override_settings": {"sd_model_checkpoint": "fine"}})
    plain = post_txt2img(client, body)
    half = post_txt2img(client, {**body, "refiner_checkpoint": "fine", "refiner_switch_at": 0.5})
    whole = post_txt2img(client, {**body, "refiner_checkpoint": "fine", "refiner_switch_at": 0.0})
    assert "Refiner: fine" in infotext(half) and f"Sampler: {sampler}" in infotext(half)
    assert (decode_pixels(whole["images"][0]) == decode_pixels(only_fine["images"][0])).all()
    for other in (plain, only_fine):
        assert (decode_pixels(half["images"][0]) != decode_pixels(other["images"][0])).any()
    assert app.models.active.checkpoint.name == "base.safetensors"
