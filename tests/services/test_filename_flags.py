"""A1111's `--unix-filenames-sanitization` (saved images' names keep every character Linux allows; only
`/` is replaced) and `--filenames-max-length` (the longest a part taken from the job may be), through a
real job's saved file and `modules.images.sanitize_filename_part` that extensions call."""

from __future__ import annotations

from modules import images
from modules.sumi.services.jobs.processing import StableDiffusionProcessingTxt2Img

PROMPT = 'a: cat? | "dog" * <fox> / owl'


def _saved_name(app) -> str:
    app.options.data["samples_filename_pattern"] = "[prompt_spaces]"
    p = StableDiffusionProcessingTxt2Img(prompt=PROMPT, seed=1, steps=1, width=64, height=64)
    app.runner.txt2img(p)
    (saved,) = (app.paths.data_dir / "outputs" / "txt2img-images").rglob("*.png")
    return saved.stem.split("-", 1)[1]


def test_by_default_characters_windows_refuses_are_replaced(make_app, tmp_path):
    app = make_app(tmp_path, loaded=True)
    assert _saved_name(app) == "a_ cat_ _ _dog_ _ _fox_ _ owl".replace('"', "_")
    assert images.sanitize_filename_part("x" * 300) == "x" * 128


def test_unix_sanitization_keeps_them_and_the_length_flag_cuts_each_part(make_app, tmp_path):
    app = make_app(tmp_path, "--unix-filenames-sanitization", "--filenames-max-length", "16", loaded=True)
    assert _saved_name(app) == 'a: cat? | "dog"'  # 16 characters, the trailing space cut as A1111
    assert images.sanitize_filename_part("a/b\nc:d", replace_spaces=False) == "a_b_c:d"  # never / or \n
    app.shutdown()
    assert images.sanitize_filename_part("a:b" + "x" * 200) == "a_b" + "x" * 125  # defaults once it stops


def test_a_length_under_one_is_named_at_start_and_the_default_kept(make_app, tmp_path):
    app = make_app(tmp_path, "--filenames-max-length", "0", start=False)
    assert any("--filenames-max-length must be at least 1" in n for n in app.notices)
    assert images.sanitize_filename_part("y" * 300) == "y" * 128
