"""Hires. fix on real txt2img jobs (the tiny demo model): the hires pass equals an upscale then img2img by
hand (latent and image paths), the step rule, sizes, infotext and its paste back, hires prompts' networks,
the hires checkpoint, firstpass_image, the scripts' hooks and ControlNet's hr_option."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.upscalers.latent import upscale_latents
from modules.sumi.services.controlnet.units import ControlNetUnit, unit_from_dict
from modules.sumi.services.jobs import hires
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    old_hires_fix_first_pass_dimensions,
    target_size,
)
from tests.fixtures.tiny_models import write_tiny_checkpoint
from tests.fixtures.tiny_networks import write_lora

SIZE = 64
BASE = {
    "prompt": "a red fox",
    "steps": 4,
    "width": SIZE,
    "height": SIZE,
    "seed": 21,
    "sampler_name": "Euler",
    "do_not_save_grid": True,
    "do_not_save_samples": True,
}


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    from modules.sumi.engine.checkpoint import load_checkpoint

    data = tmp_path_factory.mktemp("data")
    app = make_module_app(data, loaded=True)
    demo = load_checkpoint(app.checkpoints.list()[0].filename)
    components = {"family": "SD1", "unet": demo.unet, "text_encoders": [s.model for s in demo.text_encoders]}
    write_lora(app.paths.lora_dir / "style_a.safetensors", components, seed=1)
    app.loras.refresh()
    return app


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    return StableDiffusionProcessingTxt2Img(**{**BASE, "enable_hr": True, **changes})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def params(processed, index: int = 0) -> dict[str, str]:
    return parse_infotext(processed.infotexts[index])


# -- sizes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "scale", "resize", "expected"),
    [
        ((512, 512), 2.0, (0, 0), (1024, 1024, 0, 0)),
        ((512, 768), 1.5, (0, 0), (768, 1152, 0, 0)),
        ((512, 768), 2.0, (1024, 0), (1024, 1536, 0, 0)),  # one side: the aspect ratio is kept
        ((512, 768), 2.0, (0, 1024), (682, 1024, 0, 0)),
        ((512, 512), 2.0, (1024, 768), (1024, 1024, 0, 32)),  # both: cover, then crop (latent pixels)
        ((768, 512), 2.0, (1024, 1024), (1536, 1024, 64, 0)),
    ],
)
def test_target_size_is_a1111s(size, scale, resize, expected):
    assert target_size(size[0], size[1], scale, resize[0], resize[1]) == expected


def test_old_hires_behaviour_makes_width_and_height_the_final_size():
    assert old_hires_fix_first_pass_dimensions(1024, 1024) == (512, 512)
    p = StableDiffusionProcessingTxt2Img(width=1024, height=768, enable_hr=True)
    p.calculate_target_resolution(True)
    assert (p.width, p.height) == (640, 448) and (p.hr_upscale_to_x, p.hr_upscale_to_y, p.truncate_x) == (
        1097,
        768,
        9,
    )
    assert p.extra_generation_params["Hires resize"] == "1024x768"


def test_firstphase_fields_keep_the_pre_1_0_api_meaning():
    p = StableDiffusionProcessingTxt2Img(width=1024, height=1024, firstphase_width=512, firstphase_height=512)
    assert (p.width, p.height, p.hr_upscale_to_x, p.hr_upscale_to_y) == (512, 512, 1024, 1024)


# -- the hires pass equals upscale + img2img ------------------------------------------------------------------


def test_latent_hires_equals_the_first_pass_latents_upscaled_then_sampled_as_img2img(app):
    processed = app.runner.txt2img(job(hr_upscaler="Latent (bicubic)", denoising_strength=0.6))
    assert processed.images[0].size == (2 * SIZE, 2 * SIZE)
    sd = app.models.active.sd
    request = engine.BatchRequest(
        prompts=["a red fox"], negative_prompts=[""], seeds=[21], width=SIZE, height=SIZE, steps=4,
        sampler="Euler", schedule="Automatic", subseeds=processed.all_subseeds,
    )  # fmt: skip
    first = engine.generate(sd, request, progress_bar=False)
    latents = upscale_latents(first.latents, "Latent (bicubic)", 2 * SIZE // 8, 2 * SIZE // 8)
    init = engine_img2img.InitLatents(latents, strength=0.6)
    second = engine.generate(
        sd, dataclasses.replace(request, width=2 * SIZE, height=2 * SIZE, init=init), progress_bar=False
    )
    assert np.abs(pixels(processed.images[0]) - pixels(second.images[0])).max() <= 1


def test_image_hires_equals_txt2img_resized_with_the_upscaler_then_an_img2img_job(app):
    hr = app.runner.txt2img(job(hr_upscaler="Lanczos", denoising_strength=0.55))
    first = app.runner.txt2img(StableDiffusionProcessingTxt2Img(**BASE))
    upscaled = app.upscalers.resize(first.images[0], 2 * SIZE, 2 * SIZE, "Lanczos")
    fields = {k: v for k, v in BASE.items() if k not in ("width", "height")}
    i2i = StableDiffusionProcessingImg2Img(
        **fields, init_images=[upscaled], width=2 * SIZE, height=2 * SIZE, denoising_strength=0.55
    )
    by_hand = app.runner.img2img(i2i)
    assert hr.images[0].size == by_hand.images[0].size == (2 * SIZE, 2 * SIZE)
    assert np.abs(pixels(hr.images[0]) - pixels(by_hand.images[0])).max() <= 1
    assert params(hr)["Denoising strength"] == "0.55"


def test_firstpass_image_runs_only_the_hires_pass_on_that_image(app):
    first = app.runner.txt2img(StableDiffusionProcessingTxt2Img(**BASE))
    whole = app.runner.txt2img(job(hr_upscaler="Nearest"))
    only_hires = app.runner.txt2img(job(hr_upscaler="Nearest", firstpass_image=first.images[0]))
    assert only_hires.images[0].size == (2 * SIZE, 2 * SIZE)
    assert np.abs(pixels(whole.images[0]) - pixels(only_hires.images[0])).max() <= 1
    steps = _model_calls(app, job(hr_upscaler="Nearest", firstpass_image=first.images[0]))
    assert set(steps) == {2 * SIZE // 8}  # no first pass ran


# -- steps, sampler, CFG --------------------------------------------------------------------------------


def _model_calls(app, p) -> dict[int, int]:
    """Model calls per latent width while `p` runs (first pass: SIZE/8, hires pass: larger)."""
    calls: dict[int, int] = {}

    def count(params) -> None:
        width = int(params.x.shape[-1])
        calls[width] = calls.get(width, 0) + 1

    app.callbacks.add("cfg_denoiser", count)
    try:
        app.runner.txt2img(p)
    finally:
        app.callbacks.remove_function(count)
    return calls


@pytest.mark.parametrize(
    ("hr_steps", "strength", "expected"),
    [(0, 0.5, 3), (6, 0.5, 4), (0, 1.0, 4), (8, 0.25, 3)],  # int(min(s, .999) * steps) + 1 (Euler)
)
def test_hires_steps_rule(app, hr_steps, strength, expected):
    calls = _model_calls(app, job(hr_second_pass_steps=hr_steps, denoising_strength=strength))
    assert calls == {SIZE // 8: 4, 2 * SIZE // 8: expected}


def test_hires_sampler_schedule_cfg_and_prompts_change_the_second_pass_and_are_written(app):
    plain = app.runner.txt2img(job())
    changed = job(
        hr_resize_x=96, hr_resize_y=128, hr_upscaler="Nearest", hr_second_pass_steps=3,
        hr_sampler_name="Euler a", hr_scheduler="Karras", hr_cfg=5.0,
        hr_prompt="a fox at night", hr_negative_prompt="blurry",
    )  # fmt: skip
    processed = app.runner.txt2img(changed)
    assert processed.images[0].size == (96, 128)  # covered 128x128, cropped to the box
    got = params(processed)
    expected = {
        "Denoising strength": "0.75", "Hires resize-1": "96", "Hires resize-2": "128", "Hires steps": "3", "Hires upscaler": "Nearest",
        "Hires sampler": "Euler a", "Hires schedule type": "Karras", "Hires CFG Scale": "5",
        "Hires prompt": "a fox at night", "Hires negative prompt": "blurry",
    }  # fmt: skip
    assert {k: got.get(k) for k in expected} == expected
    assert "Hires upscale" not in got and "Hires checkpoint:" not in processed.infotexts[0]
    assert "Hires prompt" not in plain.infotexts[0] and params(plain)["Hires upscale"] == "2.0"
    pasted = hires.fields_from_infotext(got)
    assert pasted == {
        "enable_hr": True, "denoising_strength": 0.75, "hr_second_pass_steps": 3, "hr_resize_x": 96,
        "hr_resize_y": 128, "hr_cfg": 5.0, "hr_upscaler": "Nearest", "hr_checkpoint_name": "Use same checkpoint",
        "hr_prompt": "a fox at night", "hr_negative_prompt": "blurry", "hr_sampler_name": "Euler a",
        "hr_scheduler": "Karras",
    }  # fmt: skip
    again = app.runner.txt2img(job(**{k: v for k, v in pasted.items() if k != "hr_checkpoint_name"}))
    assert np.array_equal(pixels(again.images[0]), pixels(processed.images[0]))


def test_the_hires_prompts_networks_are_activated_for_the_second_pass_only(app):
    p = job(hr_prompt="a red fox <lora:style_a:1>", hr_upscaler="Nearest")
    with_lora = app.runner.txt2img(p)
    assert "lora" in p.hr_extra_network_data and "lora" not in p.extra_network_data
    assert p.hr_prompts == ["a red fox <lora:style_a:1>"]
    without = app.runner.txt2img(job(hr_upscaler="Nearest"))
    assert not np.array_equal(pixels(with_lora.images[0]), pixels(without.images[0]))
    first_pass = StableDiffusionProcessingTxt2Img(**BASE)  # the first pass itself ran without the LoRA
    hr_on_plain = app.runner.txt2img(
        job(
            hr_prompt="a red fox <lora:style_a:1>",
            hr_upscaler="Nearest",
            firstpass_image=app.runner.txt2img(first_pass).images[0],
        )
    )
    assert np.abs(pixels(hr_on_plain.images[0]) - pixels(with_lora.images[0])).max() <= 1


def test_hires_checkpoint_runs_the_second_pass_and_the_job_model_comes_back(app):
    other = app.paths.data_dir / "models" / "Stable-diffusion" / "other.safetensors"
    write_tiny_checkpoint(other, "SD1")
    app.models.refresh()
    setting = app.options.sd_model_checkpoint
    active = app.models.active.checkpoint.title
    same = app.runner.txt2img(job())
    p = job(hr_checkpoint_name="other")
    switched = app.runner.txt2img(p)
    assert params(switched)["Hires checkpoint"].startswith("other")
    assert app.models.active.checkpoint.title == active and app.options.sd_model_checkpoint == setting
    assert not np.array_equal(pixels(same.images[0]), pixels(switched.images[0]))
    with pytest.raises(InvalidRequestError, match="Could not find checkpoint"):
        app.runner.txt2img(job(hr_checkpoint_name="no such model"))


# -- scripts, progress, errors ------------------------------------------------------------------------------


def test_scripts_get_before_hr_and_a_second_process_before_every_sampling(app):
    import modules.scripts as scripts
    from modules.sumi.services.scripts.runner import ScriptRunner

    seen: list[tuple[str, bool, tuple | None]] = []

    class Recorder(scripts.Script):
        def title(self):
            return "recorder"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def before_hr(self, p, *args):
            seen.append(("before_hr", p.is_hr_pass, None))

        def process_before_every_sampling(self, p, *args, **kwargs):
            x = kwargs.get("x")
            seen.append(("sampling", p.is_hr_pass, None if x is None else tuple(x.shape[-2:])))

    runner = ScriptRunner("txt2img")
    script = Recorder()
    script.args_from = script.args_to = 0
    runner.alwayson_scripts.append(script)
    runner.scripts.append(script)
    p = job()
    p.scripts = runner
    app.runner.txt2img(p)
    assert seen == [("sampling", False, None), ("before_hr", True, None), ("sampling", True, (16, 16))]
    assert p.is_hr_pass is False
    seen.clear()
    upscale = job(firstpass_image=Image.new("RGB", (SIZE, SIZE), "gray"))
    upscale.scripts = runner
    app.runner.txt2img(upscale)  # ✨ Upscale: no first pass, so no first process_before_every_sampling
    assert seen == [("before_hr", True, None), ("sampling", True, (16, 16))]


def test_a_hires_job_counts_two_jobs_per_batch_and_saves_the_first_pass_when_asked(app, tmp_path):
    assert (
        hires.job_count(job(n_iter=3)) == 6
        and hires.job_count(job(firstpass_image=Image.new("RGB", (8, 8)))) == 1
    )
    app.settings.set({"save_images_before_highres_fix": True})
    try:
        app.runner.txt2img(job(do_not_save_samples=False, outpath_samples=str(tmp_path)))
    finally:
        app.settings.set({"save_images_before_highres_fix": False})
    names = sorted(f.name for f in tmp_path.rglob("*.png"))
    assert len(names) == 2 and any(n.endswith("-before-highres-fix.png") for n in names)
    sizes = {Image.open(f).size for f in tmp_path.rglob("*.png")}
    assert sizes == {(SIZE, SIZE), (2 * SIZE, 2 * SIZE)}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"hr_upscaler": "no such upscaler"}, "not found"),
        ({"hr_scale": 100.0}, "max_image_size"),
        ({"denoising_strength": 1.5}, "denoising_strength"),
        ({"hr_sampler_name": "no sampler"}, "sampler"),
        ({"hr_second_pass_steps": -1}, "hr_second_pass_steps"),
        ({"hr_cfg": 500.0}, "hr_cfg"),
        ({"firstpass_image": "not an image"}, "firstpass_image"),
    ],
)
def test_bad_hires_settings_are_clear_errors(app, change, words):
    with pytest.raises(InvalidRequestError, match=words):
        app.runner.txt2img(job(**change))


def test_controlnet_hr_option_picks_the_passes_a_unit_works_in():
    units = [
        ControlNetUnit(enabled=True, hr_option="Both"),
        ControlNetUnit(enabled=True, hr_option="Low res only"),
        ControlNetUnit(enabled=True, hr_option="High res only"),
    ]
    first = hires.first_pass_units(job(), units)
    assert [u.enabled for u in first] == [True, True, False]
    assert hires.first_pass_units(StableDiffusionProcessingTxt2Img(**BASE), units) == units  # hires off
    assert unit_from_dict({"hr_option": "high res only"}).hr_option == "High res only"
    with pytest.raises(InvalidRequestError, match="hr_option"):
        unit_from_dict({"hr_option": "sometimes"})


def test_hires_latents_keep_their_values_through_a_nearest_upscale():
    small = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(upscale_latents(small, "Latent (nearest)", 8, 8)[0, 0, ::2, ::2], small[0, 0])


def _run_with(app, p, on_call):
    app.callbacks.add("cfg_denoiser", on_call)
    try:
        return app.runner.txt2img(p)
    finally:
        app.callbacks.remove_function(on_call)


def test_interrupt_keeps_the_first_pass_skip_goes_on_to_the_hires_pass_and_progress_counts_both(app):
    seen: list[tuple[int, int, int]] = []

    def interrupt(params) -> None:
        app.state.interrupt()

    assert _run_with(app, job(), interrupt).images[0].size == (SIZE, SIZE)  # A1111: the first pass, no hires

    def skip_first_pass(params) -> None:
        seen.append((int(params.x.shape[-1]), app.state.job_no, app.state.job_count))
        if params.x.shape[-1] == SIZE // 8:
            app.state.skip()

    skipped = _run_with(app, job(n_iter=2), skip_first_pass)
    assert [image.size for image in skipped.images] == [(2 * SIZE, 2 * SIZE)] * 2
    assert (SIZE // 8, 0, 4) in seen and (2 * SIZE // 8, 1, 4) in seen and (2 * SIZE // 8, 3, 4) in seen


def test_prompt_edits_count_the_hires_steps_after_the_first_passes(app):
    edited, plain = "[a red fox:a blue cat:5]", "a red fox"  # step 5: hires step 1 after 4 first-pass steps
    first = [
        app.runner.txt2img(StableDiffusionProcessingTxt2Img(**{**BASE, "prompt": t})) for t in (edited, plain)
    ]
    assert np.array_equal(pixels(first[0].images[0]), pixels(first[1].images[0]))  # never reached in 4 steps
    hr = [app.runner.txt2img(job(prompt=t, denoising_strength=1.0)) for t in (edited, plain)]
    assert not np.array_equal(pixels(hr[0].images[0]), pixels(hr[1].images[0]))


def test_an_inpainting_model_gets_the_upscaled_images_conditioning(make_app, tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    write_tiny_checkpoint(models / "tiny-inpainting.safetensors", "SD1", inpaint=True)
    inpaint_app = make_app(tmp_path, loaded=True)
    assert engine_img2img.needs_image_conditioning(inpaint_app.models.get().sd) == "inpaint"
    inpaint_app.settings.set({"inpainting_mask_weight": 0.5})
    hr = inpaint_app.runner.txt2img(job(hr_upscaler="Lanczos", denoising_strength=0.6))
    first = inpaint_app.runner.txt2img(StableDiffusionProcessingTxt2Img(**BASE))
    upscaled = inpaint_app.upscalers.resize(first.images[0], 2 * SIZE, 2 * SIZE, "Lanczos")
    fields = {k: v for k, v in BASE.items() if k not in ("width", "height")}
    by_hand = inpaint_app.runner.img2img(
        StableDiffusionProcessingImg2Img(
            **fields, init_images=[upscaled], width=2 * SIZE, height=2 * SIZE, denoising_strength=0.6
        )
    )
    assert np.abs(pixels(hr.images[0]) - pixels(by_hand.images[0])).max() <= 1
    for weight in (1.0, 0.5):  # latent path: the txt2img conditioning, or the decoded image's below 1
        inpaint_app.settings.set({"inpainting_mask_weight": weight})
        assert inpaint_app.runner.txt2img(job()).images[0].size == (2 * SIZE, 2 * SIZE)
