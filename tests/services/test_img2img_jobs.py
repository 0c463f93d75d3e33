"""img2img and inpainting jobs on a real App (the tiny demo model): masks, masked content, only-masked
crops, blur, resize modes, the overlay of the original, infotext and paste, output folders, batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images import masking
from modules.sumi.services.jobs import img2img
from modules.sumi.services.jobs.infotext import parse_infotext
from modules.sumi.services.jobs.processing import StableDiffusionProcessingImg2Img
from tests.app_support import with_random_weight_model

SIZE = 64


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    with_random_weight_model(data)
    return make_module_app(data, loaded=True)


def picture(size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """A picture with structure (a gradient and a square), so crops and resizes show."""
    w, h = size
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], -1).astype(np.uint8)
    rgb[h // 4 : h // 2, w // 4 : w // 2] = (10, 200, 30)
    return Image.fromarray(rgb)


def square_mask(size=(SIZE, SIZE), box=(20, 20, 44, 44)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def job(**changes) -> StableDiffusionProcessingImg2Img:
    values = {
        "prompt": "a red fox",
        "steps": 3,
        "width": SIZE,
        "height": SIZE,
        "seed": 11,
        "sampler_name": "Euler",
        "init_images": [picture()],
        "denoising_strength": 0.8,
        "do_not_save_grid": True,
    }
    return StableDiffusionProcessingImg2Img(**{**values, **changes})


def params(processed, index: int = 0) -> dict[str, str]:
    return parse_infotext(processed.infotexts[index])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


@pytest.mark.parametrize("fill", [0, 1, 2, 3])
def test_each_masked_content_mode_changes_only_the_masked_part(app, fill):
    p = job(mask=square_mask(), inpainting_fill=fill, inpaint_full_res=False, mask_blur=0)
    processed = app.runner.img2img(p)
    out, original = pixels(processed.images[0]), pixels(picture())
    outside = np.asarray(p.mask_for_overlay) == 0
    assert outside.sum() > 0 and (out[outside] == original[outside]).all()
    assert np.abs(out[24:40, 24:40] - original[24:40, 24:40]).max() > 10  # the masked part was redrawn
    written = params(processed).get("Masked content")
    assert written == img2img.MASKED_CONTENT[fill]  # "original" by the parser's default, as A1111
    assert img2img.fields_from_infotext(params(processed))["inpainting_fill"] == fill


def test_latent_fills_give_different_pictures(app):
    results = [
        pixels(
            app.runner.img2img(job(mask=square_mask(), inpainting_fill=f, inpaint_full_res=False)).images[0]
        )
        for f in (1, 2, 3)
    ]
    assert not np.array_equal(results[0], results[1]) and not np.array_equal(results[1], results[2])


def test_only_masked_crops_around_the_mask_with_padding_and_pastes_back(app):
    init = picture((128, 128))
    mask = square_mask((128, 128), (40, 50, 60, 70))
    p = job(init_images=[init], mask=mask, inpaint_full_res=True, inpaint_full_res_padding=8, mask_blur=0)
    processed = app.runner.img2img(p)
    region = masking.expand_crop_region((32, 42, 68, 78), SIZE, SIZE, 128, 128)
    x1, y1, x2, y2 = region
    assert p.paste_to == (x1, y1, x2 - x1, y2 - y1)
    out = processed.images[0]
    assert out.size == (128, 128)  # the result goes back into the full picture
    outside = np.ones((128, 128), bool)
    outside[y1:y2, x1:x2] = False
    assert (pixels(out)[outside] == pixels(init)[outside]).all()
    assert np.abs(pixels(out)[52:68, 42:58] - pixels(init)[52:68, 42:58]).max() > 10
    fields = params(processed)
    assert fields["Inpaint area"] == "Only masked" and fields["Masked area padding"] == "8"


def test_padding_widens_the_crop(app):
    mask = square_mask((128, 128), (40, 50, 60, 70))
    small, large = (
        job(init_images=[picture((128, 128))], mask=mask, inpaint_full_res_padding=pad) for pad in (0, 32)
    )
    app.runner.img2img(small)
    app.runner.img2img(large)
    assert small.paste_to[2] < large.paste_to[2]


def test_mask_blur_softens_the_mask_and_is_written_as_a1111_does(app):
    sharp = job(mask=square_mask(), mask_blur=0, inpaint_full_res=False)
    soft = job(mask=square_mask(), mask_blur=6, inpaint_full_res=False)
    processed = [app.runner.img2img(sharp), app.runner.img2img(soft)]
    assert set(np.unique(np.asarray(sharp.mask_for_overlay))) <= {0, 255}
    assert len(np.unique(np.asarray(soft.mask_for_overlay))) > 10  # grey levels at the edge
    assert (np.asarray(soft.mask_for_overlay) > 0).sum() > (np.asarray(sharp.mask_for_overlay) > 0).sum()
    assert "Mask blur" not in params(processed[0]) and params(processed[1])["Mask blur"] == "6"
    uneven = job(mask=square_mask(), mask_blur_x=2, mask_blur_y=5)
    assert uneven.mask_blur is None
    assert "Mask blur" not in params(app.runner.img2img(uneven))  # A1111 writes it only when x == y


def test_inverted_mask_keeps_the_masked_part(app):
    p = job(mask=square_mask(), inpainting_mask_invert=1, mask_blur=0, inpaint_full_res=False)
    processed = app.runner.img2img(p)
    out, original = pixels(processed.images[0]), pixels(picture())
    assert (out[20:44, 20:44] == original[20:44, 20:44]).all()
    assert params(processed)["Mask mode"] == "Inpaint not masked"


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_resize_modes_resize_the_init_image_as_a1111(app, mode):
    init = picture((128, 64))  # 2:1 into a square job
    p = job(init_images=[init], resize_mode=mode, denoising_strength=0.0)
    processed = app.runner.img2img(p)
    assert processed.images[0].size == (SIZE, SIZE)
    from modules.sumi.services.images.resize import resize_image

    expected = resize_image(mode, init, SIZE, SIZE)
    loaded = app.models.active.sd
    tensor = torch.from_numpy(np.moveaxis(np.asarray(expected, dtype=np.float32) / 255, 2, 0))[None]
    latents = engine_img2img.encode(loaded, tensor.to(loaded.device, loaded.vae.dtype) * 2 - 1)
    assert torch.allclose(p.init_latent, latents, atol=1e-5)


def test_latent_upscale_resizes_the_latents(app):
    p = job(init_images=[picture((32, 32))], resize_mode=3, denoising_strength=0.5)
    processed = app.runner.img2img(p)
    assert tuple(p.init_latent.shape[-2:]) == (SIZE // 8, SIZE // 8)
    assert processed.images[0].size == (SIZE, SIZE)


def test_strength_zero_returns_the_init_image_after_the_vae_round_trip(app):
    init = picture()
    processed = app.runner.img2img(job(init_images=[init], denoising_strength=0.0))
    loaded = app.models.active.sd
    tensor = torch.from_numpy(np.moveaxis(np.asarray(init, dtype=np.float32) / 255, 2, 0))[None]
    latents = engine_img2img.encode(loaded, tensor.to(loaded.device, loaded.vae.dtype) * 2 - 1)
    round_trip = vae_ops.to_pil(vae_ops.decode(loaded, latents))[0]
    assert np.abs(pixels(processed.images[0]) - pixels(round_trip)).max() <= 1
    assert params(processed)["Denoising strength"] == "0.0"


def test_one_init_image_fills_the_batch_and_several_make_it(app):
    one = job(batch_size=2, mask=square_mask(), inpaint_full_res=False)
    processed = app.runner.img2img(one)
    assert len(processed.images) == 2 and len(one.overlay_images) == 2
    assert not np.array_equal(pixels(processed.images[0]), pixels(processed.images[1]))  # seeds 11, 12
    two = job(init_images=[picture(), picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)], batch_size=4)
    assert len(app.runner.img2img(two).images) == 2 and two.batch_size == 2
    with pytest.raises(InvalidRequestError, match="bad number of images"):
        app.runner.img2img(job(init_images=[picture()] * 3, batch_size=2))


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"init_images": []}, "init image"),
        ({"denoising_strength": 1.5}, "denoising_strength"),
        ({"resize_mode": 7}, "resize_mode"),
        ({"inpainting_fill": 9}, "inpainting_fill"),
        ({"init_images": ["not an image"]}, "must be images"),
        ({"resize_mode": 3, "init_images": [Image.new("RGB", (2100, 2100))]}, "max_image_size"),
    ],
)
def test_bad_jobs_are_refused_before_they_are_queued(app, changes, words):
    with pytest.raises(InvalidRequestError, match=words):
        app.runner.submit(job(**changes))
    assert app.queue.pending() == []


def test_an_all_black_mask_keeps_the_picture_and_only_masked_falls_back_to_the_whole_picture(app):
    black = Image.new("L", (SIZE, SIZE), 0)
    whole = app.runner.img2img(job(mask=black, inpaint_full_res=False, mask_blur=0))
    assert (pixels(whole.images[0]) == pixels(picture())).all()
    p = job(mask=black, inpaint_full_res=True)
    processed = app.runner.img2img(p)
    assert any("mask is blank" in w for w in processed.warnings) and p.paste_to is None


def test_a_mask_of_another_size_is_resized_to_the_image(app):
    p = job(mask=square_mask((32, 32), (10, 10, 22, 22)), inpaint_full_res=False, mask_blur=0)
    processed = app.runner.img2img(p)
    assert processed.images[0].size == (SIZE, SIZE)
    assert np.asarray(p.mask_for_overlay)[0, 0] == 0 and np.asarray(p.mask_for_overlay)[32, 32] == 255


def test_noise_multiplier_and_the_paste_fields_round_trip(app):
    p = job(
        mask=square_mask(),
        initial_noise_multiplier=0.9,
        mask_blur=3,
        inpainting_fill=2,
        inpaint_full_res=True,
        inpaint_full_res_padding=12,
        inpainting_mask_invert=1,
        denoising_strength=0.55,
    )
    fields = params(app.runner.img2img(p))
    assert fields["Noise multiplier"] == "0.9"
    assert img2img.fields_from_infotext(fields) == {
        "denoising_strength": 0.55,
        "mask_blur": 3,
        "inpaint_full_res_padding": 12,
        "initial_noise_multiplier": 0.9,
        "inpainting_fill": 2,
        "inpaint_full_res": True,
        "inpainting_mask_invert": 1,
    }


def test_noise_multiplier_defaults_to_the_setting(app):
    app.settings.set({"initial_noise_multiplier": 0.8})
    try:
        p = job()
        fields = params(app.runner.img2img(p))
    finally:
        app.settings.set({"initial_noise_multiplier": 1.0})
    assert p.initial_noise_multiplier == 0.8 and fields["Noise multiplier"] == "0.8"


def test_outputs_go_to_the_img2img_folders_with_a1111_names(app):
    processed = app.runner.img2img(job(batch_size=2, do_not_save_grid=False, seed=77, prompt="grey owl"))
    outputs = app.paths.data_dir / "outputs"
    samples = sorted((outputs / "img2img-images").rglob("*-77-grey owl.png"))
    assert len(samples) == 1 and samples[0].parent.parent.name == "img2img-images"
    assert sorted((outputs / "img2img-images").rglob("*-78-grey owl.png"))
    assert list((outputs / "img2img-grids").rglob("grid-*.png"))
    info = json.loads(processed.js())
    assert info["denoising_strength"] == 0.8 and info["index_of_first_image"] == 1


def test_the_job_and_its_progress_are_named_img2img(app):
    seen = []

    def record(params) -> None:
        seen.append(app.state.job)

    app.callbacks.add("cfg_denoiser", record)
    try:
        queued = app.runner.submit(job())
        queued.future.result(60)
    finally:
        app.callbacks.remove_function(record)
    assert queued.name == "img2img" and seen and set(seen) == {"img2img"}


def test_a_nine_channel_inpainting_model_gets_the_mask_and_the_masked_image(make_app, tmp_path):
    from tests.fixtures.tiny_models import write_tiny_checkpoint

    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    write_tiny_checkpoint(models / "tiny-inpainting.safetensors", "SD1", inpaint=True)
    inpaint_app = make_app(tmp_path, loaded=True)
    assert engine_img2img.needs_image_conditioning(inpaint_app.models.get().sd) == "inpaint"
    p = job(mask=square_mask(), inpaint_full_res=False, mask_blur=0)
    processed = inpaint_app.runner.img2img(p)
    assert p.is_using_inpainting_conditioning and tuple(p.image_conditioning.shape) == (1, 5, 8, 8)
    assert params(processed)["Conditional mask weight"] == "1.0"
    assert json.loads(processed.js())["is_using_inpainting_conditioning"] is True
    out, original = pixels(processed.images[0]), pixels(picture())
    outside = np.asarray(p.mask_for_overlay) == 0
    assert (out[outside] == original[outside]).all()
    inpaint_app.settings.set({"inpainting_mask_weight": 0.5})
    weaker = job(mask=square_mask(), inpaint_full_res=False, mask_blur=0)
    assert params(inpaint_app.runner.img2img(weaker))["Conditional mask weight"] == "0.5"
    assert not torch.equal(weaker.image_conditioning, p.image_conditioning)


def test_a_job_run_again_starts_from_its_inputs_as_loopback_does(app):
    mask = square_mask()
    p = job(mask=mask, inpaint_full_res=True, inpaint_full_res_padding=4, mask_blur=0)
    first = app.runner.img2img(p).images[0]
    p.init_images = [first]
    second = app.runner.img2img(p).images[0]
    assert p.image_mask is mask  # the mask given stays; masks and latents are made anew
    outside = np.asarray(p.mask_for_overlay) == 0
    assert (pixels(second)[outside] == pixels(first)[outside]).all()
    assert not np.array_equal(pixels(second), pixels(first))


def test_soft_inpainting_keeps_grey_mask_levels_and_composites_by_change(app):
    import gradio as gr

    runner = app.scripts.ensure_inputs(gr.Blocks, tab="img2img")  # laid out as an API-only server does
    args = runner.script_args_for(None, [], {"Soft Inpainting": {"args": [True, 1, 0.5, 4, 0, 0.5, 2]}})
    big = (128, 128)  # soft inpainting's filters reach a few latent pixels beyond the mask
    p = job(
        init_images=[picture(big)],
        width=128,
        height=128,
        mask=square_mask(big, (48, 48, 80, 80)),
        mask_blur=3,
    )
    p.inpaint_full_res = False
    p.scripts, p.script_args = runner, args
    processed = app.runner.img2img(p)
    assert p.mask_round is False and len(torch.unique(p.nmask)) > 2  # the blurred edge stays soft
    assert isinstance(p.engine_extensions["soft_inpainting"], engine_img2img.SoftInpainting)
    assert params(processed)["Soft inpainting enabled"] == "True"
    out, original = pixels(processed.images[0]), pixels(picture(big))
    assert np.abs(out[:4] - original[:4]).max() <= 1  # far from the mask nothing moved: the original stays
    assert np.abs(out[56:72, 56:72] - original[56:72, 56:72]).max() > 10


def test_latent_upscale_with_a_mask_fits_the_mask_to_the_image(app):
    init = picture((32, 32))
    p = job(
        init_images=[init], resize_mode=3, mask=square_mask((32, 32), (8, 8, 24, 24)), inpaint_full_res=False
    )
    processed = app.runner.img2img(p)
    assert processed.images[0].size == (SIZE, SIZE) and p.nmask is not None


def test_a_scripts_grid_from_an_img2img_job_goes_to_the_img2img_grids_folder(app):
    """X/Y/Z plot and Prompt matrix grids of img2img jobs land where A1111 puts them."""
    from modules.sumi.services.jobs import script_jobs

    p = job(do_not_save_grid=False)
    path = script_jobs.save_grid(app, p, Image.new("RGB", (64, 64)), "", "xyz_grid")
    assert path is not None
    assert app.paths.resolve(app.options.outdir_img2img_grids) in path.parents


# -- colour correction, saved and returned init images and masks, script hooks ---------------------------
def _colour_distance(image: Image.Image, reference: Image.Image) -> float:
    """How far the per-channel histograms (sorted values) of two same-sized pictures are apart."""
    a = np.sort(pixels(image).reshape(-1, 3), axis=0)
    b = np.sort(pixels(reference.resize(image.size)).reshape(-1, 3), axis=0)
    return float(np.abs(a - b).mean())


def test_color_correction_brings_the_result_towards_the_init_images_colours(app):
    plain_job = job(denoising_strength=1.0, seed=5)
    plain = app.runner.img2img(plain_job).images[0]
    app.settings.set({"img2img_color_correction": True})
    try:
        p = job(denoising_strength=1.0, seed=5)
        corrected = app.runner.img2img(p)
    finally:
        app.settings.set({"img2img_color_correction": False})
    assert plain_job.color_corrections is None
    assert p.color_corrections is not None and len(p.color_corrections) == p.batch_size
    image = corrected.images[0]
    assert _colour_distance(image, picture()) < _colour_distance(plain, picture()) / 2
    assert not any("olor correction" in key for key in params(corrected))  # A1111 writes no infotext key


def test_color_corrections_set_by_a_script_are_kept_and_the_uncorrected_copy_is_saved(app):
    from modules.processing import setup_color_correction

    target = Image.new("RGB", (SIZE, SIZE), (200, 30, 30))
    app.settings.set({"save_images_before_color_correction": True})
    try:
        p = job(denoising_strength=1.0, seed=6, prompt="cc copy")
        p.color_corrections = [setup_color_correction(target)]  # as Loopback does with the option on
        image = app.runner.img2img(p).images[0]
    finally:
        app.settings.set({"save_images_before_color_correction": False})
    red = pixels(image)[..., 0].mean() - pixels(image)[..., 1:].mean()
    assert red > 50
    outputs = app.paths.data_dir / "outputs" / "img2img-images"
    assert list(outputs.rglob("*-6-cc copy-before-color-correction.png"))
    assert list(outputs.rglob("*-6-cc copy.png"))


def test_loopback_corrects_colours_towards_the_original_when_the_option_is_on(app):
    import gradio as gr

    runner = app.scripts.ensure_inputs(gr.Blocks, tab="img2img")
    args = runner.script_args_for("loopback", [2, 1.0, "Linear", "None"], {})

    def loop() -> Image.Image:
        p = job(denoising_strength=1.0, seed=8)
        p.scripts, p.script_args = runner, args
        return runner.run(p, *args).images[-1]

    plain = loop()
    app.settings.set({"img2img_color_correction": True})
    try:
        corrected = loop()
    finally:
        app.settings.set({"img2img_color_correction": False})
    assert _colour_distance(corrected, picture()) < _colour_distance(plain, picture()) / 2


def test_save_init_img_saves_the_init_image_named_by_its_md5(app):
    import hashlib

    init = picture()
    app.settings.set({"save_init_img": True})
    try:
        p = job(init_images=[init])
        app.runner.img2img(p)
    finally:
        app.settings.set({"save_init_img": False})
    digest = hashlib.md5(init.tobytes()).hexdigest()
    saved = app.paths.resolve(app.options.outdir_init_images) / f"{digest}.png"
    assert p.init_img_hash == digest and saved.is_file()
    assert np.array_equal(pixels(Image.open(saved)), pixels(init))


def test_save_init_img_uses_the_samples_format_and_quality(app):
    import hashlib

    init = picture()
    app.settings.set({"save_init_img": True, "samples_format": "jpg", "jpeg_quality": 20})
    try:
        p = job(init_images=[init])
        app.runner.img2img(p)
    finally:
        app.settings.set({"save_init_img": False, "samples_format": "png", "jpeg_quality": 80})
    digest = hashlib.md5(init.tobytes()).hexdigest()
    saved = app.paths.resolve(app.options.outdir_init_images) / f"{digest}.jpg"
    assert saved.is_file() and Image.open(saved).format == "JPEG"
    assert (
        np.abs(pixels(Image.open(saved)).astype(int) - pixels(init).astype(int)).max() > 0
    )  # quality 20: lossy


def test_outdir_init_images_is_a_confined_path_setting(app):
    with pytest.raises(Exception, match="(?i)outside|allowed|path"):
        app.settings.set({"outdir_init_images": "/etc"})


def test_masks_are_returned_and_saved_after_each_image_as_a1111(app):
    keys = ("return_mask", "return_mask_composite", "save_mask", "save_mask_composite")
    app.settings.set(dict.fromkeys(keys, True))
    try:
        p = job(mask=square_mask(), mask_blur=0, seed=31, prompt="masked owl", batch_size=2)
        processed = app.runner.img2img(p)
    finally:
        app.settings.set(dict.fromkeys(keys, False))
    images = processed.images
    assert len(images) == 6 and len(processed.infotexts) == 6
    mask, composite = images[1], images[2]
    assert mask.mode == "RGB" and pixels(mask)[32, 32].tolist() == [255, 255, 255]
    assert pixels(mask)[2, 2].tolist() == [0, 0, 0]
    alpha = np.asarray(composite)[..., 3]
    assert composite.mode == "RGBA" and alpha[32, 32] == 255 and alpha[2, 2] == 0
    outputs = app.paths.data_dir / "outputs" / "img2img-images"
    assert list(outputs.rglob("*-31-masked owl-mask.png")) and list(outputs.rglob("*-32-masked owl-mask.png"))
    assert list(outputs.rglob("*-31-masked owl-mask-composite.png"))


def test_no_masks_are_returned_without_a_mask_or_with_the_options_off(app):
    assert len(app.runner.img2img(job(mask=square_mask())).images) == 1
    app.settings.set({"return_mask": True})
    try:
        assert len(app.runner.img2img(job()).images) == 1
    finally:
        app.settings.set({"return_mask": False})


def _runner_with(script):
    from modules.sumi.services.scripts.runner import ScriptRunner

    runner = ScriptRunner("img2img")
    script.args_from = script.args_to = 0
    runner.alwayson_scripts.append(script)
    runner.scripts.append(script)
    return runner


def test_scripts_get_process_before_every_sampling_and_on_mask_blend_with_a1111s_args(app):
    import modules.scripts as scripts

    calls: dict[str, list] = {"before": [], "blend": []}

    class Recorder(scripts.Script):
        def title(self):
            return "recorder"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def process_before_every_sampling(self, p, *args, **kwargs):
            calls["before"].append(dict(kwargs))

        def on_mask_blend(self, p, mba, *args):
            calls["blend"].append((mba.is_final_blend, mba.sigma, mba.nmask.shape, mba.init_latent.shape))
            mba.blended_latent = mba.init_latent.expand_as(mba.blended_latent)  # keep the init everywhere

    p = job(mask=square_mask(), mask_blur=0, steps=2)
    p.scripts, p.script_args = _runner_with(Recorder()), []
    processed = app.runner.img2img(p)
    assert len(calls["before"]) == 1 and set(calls["before"][0]) == {"x", "noise", "c", "uc"}
    assert calls["before"][0]["x"] is p.init_latent
    finals = [c for c in calls["blend"] if c[0]]
    steps = [c for c in calls["blend"] if not c[0]]
    assert len(finals) == 1 and finals[0][1] is None and steps and all(c[1] is not None for c in steps)
    plain = app.runner.img2img(job(mask=square_mask(), mask_blur=0, steps=2)).images[0]
    kept = pixels(processed.images[0])[24:40, 24:40]  # the blend kept the init: the masked part barely moved
    original = pixels(picture())[24:40, 24:40]
    assert np.abs(kept - original).mean() < np.abs(pixels(plain)[24:40, 24:40] - original).mean()
