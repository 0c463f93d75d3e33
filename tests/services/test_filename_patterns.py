"""A1111 1.10's file-name pattern tokens (`images.FilenameGenerator`), each against the value worked out
by hand from the job, including A1111's rule that a token with nothing to say drops the text before it."""

from __future__ import annotations

import datetime as dt
import hashlib
from types import SimpleNamespace

from PIL import Image

from modules.sumi.services.images.namegen import FilenameGenerator


def job(**values) -> SimpleNamespace:
    p = SimpleNamespace(
        steps=20, cfg_scale=7.0, width=512, height=768, styles=[], sampler_name="DPM++ 2M",
        scheduler="karras", sd_model_name="tiny", sd_model_hash="abc123", job_timestamp="20260101120000",
        clip_skip=2, denoising_strength=0.0, batch_size=1, n_iter=1, batch_index=0, iteration=0,
        all_seeds=[7], prompt="a cat, best", negative_prompt="blurry", user="ann",
    )  # fmt: skip
    for key, value in values.items():
        setattr(p, key, value)
    return p


def name(pattern: str, p=None, seed=7, prompt="a cat, best", **kwargs) -> str:
    return FilenameGenerator(job() if p is None else p, seed, prompt, **kwargs).apply(pattern)


def test_seed_last_is_the_batchs_last_seed_and_dropped_with_its_dash_for_one_image():
    batch = job(batch_size=3, all_seeds=[10, 11, 12])
    assert name("[seed_first]-[seed_last]", batch, seed=11) == "10-12"
    assert name("[seed]-[seed_last]") == "7"  # batch size 1: "-[seed_last]" is dropped
    assert name("[seed_first]") == "7"


def test_batch_and_generation_numbers_count_from_one_and_vanish_when_meaningless():
    p = job(batch_size=2, n_iter=3, batch_index=1, iteration=2)
    assert name("[batch_number]-[generation_number]-[batch_size]", p) == "2-6-2"
    assert name("[seed]-[batch_number]-[generation_number]") == "7"  # the text before goes too
    assert name("[seed]-[batch_number]", p, zip=True) == "7"


def test_sampler_scheduler_and_job_fields():
    assert name("[sampler_scheduler]_[scheduler]_[sampler]") == "DPM++ 2M Karras_Karras_DPM++ 2M"
    assert name("[steps]-[cfg]-[clip_skip]-[user]-[model_name]-[model_hash]") == "20-7.0-2-ann-tiny-abc123"
    assert name("[job_timestamp]") == "20260101120000"
    assert name("[styles]", job(styles=["None", "ink"])) == "ink"


def test_denoising_only_when_the_job_has_some():
    assert name("[steps]-[denoising]") == "20"
    assert name("[steps]-[denoising]", job(denoising_strength=0.35)) == "20-0.35"


def test_hashes_of_prompts_and_image_with_optional_length():
    cat = hashlib.sha256(b"a cat, best").hexdigest()
    assert name("[prompt_hash]") == cat[:8] and name("[prompt_hash<4>]") == cat[:4]
    assert name("[negative_prompt_hash<6>]") == hashlib.sha256(b"blurry").hexdigest()[:6]
    assert name("[full_prompt_hash]") == hashlib.sha256(b"a cat, best blurry").hexdigest()[:8]
    image = Image.new("RGB", (4, 4), "red")
    assert name("[image_hash<10>]", image=image) == hashlib.sha256(image.tobytes()).hexdigest()[:10]
    assert name("[width]x[height]", image=image) == "4x4"
    assert name("[width]x[height]") == "512x768"  # no image: the job's size


def test_datetime_with_format_and_time_zone():
    text = name("[datetime<%Y_%H><Asia/Tokyo>]")
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=9)))
    assert text in {now.strftime("%Y_%H"), (now - dt.timedelta(hours=1)).strftime("%Y_%H")}
    assert len(name("[datetime]")) == 14 and name("[date]") == dt.date.today().strftime("%Y-%m-%d")


def test_hasprompt_prompt_variants_and_styles_removed():
    assert name("[hasprompt<cat><dog|nodog>]") == "catnodog"
    assert name("[prompt_words]") == "a cat best"
    assert name("[prompt]") == "a_cat,_best"
    styled = job(styles=["ink"], style_prompts={"ink": "{prompt}, ink drawing"})
    assert name("[prompt_no_styles]", styled, prompt="a cat, ink drawing") == "a cat"


def test_unknown_tokens_and_missing_values_stay_as_written():
    assert name("[nope]-[seed]") == "[nope]-7"
    assert FilenameGenerator(None, 3, "x").apply("[steps]-[seed]-[none]") == "[steps]-3-"
    assert name("[vae_filename]") == "NoneType"
    assert name("[vae_filename]", job(sd_vae_name="my.vae.safetensors")) == "my"


def test_an_extension_can_add_its_own_token(monkeypatch):
    table = {**FilenameGenerator.replacements, "frame": lambda g, *a: f"f{a[0] if a else 0}"}
    monkeypatch.setattr(FilenameGenerator, "replacements", table)
    assert name("[frame<3>]-[seed]") == "f3-7"


def test_a_jobs_image_file_name_counts_its_place_in_the_batch():
    from modules.sumi.services.images.namegen import image_file_decoration

    p = job(batch_size=2, n_iter=2, all_seeds=[1, 2, 3, 4])
    names = [
        image_file_decoration(p, i, p.all_seeds[i], "x", None, "[seed]-[batch_number]-[generation_number]")
        for i in range(4)
    ]
    assert names == ["1-1-1", "2-2-2", "3-1-3", "4-2-4"]
