"""The ↙️ paste button: infotext (or params.txt) -> txt2img control values (the button in Chromium is in
tests/browser/test_ui_paste_browser.py)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from modules.sumi.frontends.gradio import paste
from modules.sumi.frontends.gradio import txt2img as ui
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.styles import StyleDatabase
from tests.fixtures.infotexts import A1111_INFOTEXT

SKIP = gr.skip()


def styles_db(tmp_path: Path) -> StyleDatabase:
    path = tmp_path / "styles.csv"
    path.write_text(
        "name,prompt,negative_prompt\n"
        'quality,"masterpiece, {prompt}",\n'
        'clean,,"blurry, lowres"\n'
        "unused,never in a prompt,\n",
        encoding="utf-8",
    )
    return StyleDatabase([path])


def options(**values) -> Options:
    opts = Options()
    for key, value in values.items():
        opts.set(key, value)
    return opts


def outputs_of(result: tuple) -> dict:
    assert len(result) == len(paste.FIELDS) + 1
    return dict(zip((*paste.FIELDS, "note"), result, strict=True))


# What paste sets on the Hires. fix accordion from an infotext without hires keys (A1111's defaults).
HIRES_DEFAULTS = {
    "enable_hr": False,
    "hr_resize_x": 0,
    "hr_resize_y": 0,
    "hr_checkpoint_name": "Use same checkpoint",
    "hr_sampler_name": "Use same sampler",
    "hr_scheduler": "Use same scheduler",
    "hr_prompt": "",
    "hr_negative_prompt": "",
}


# -- the mapping -----------------------------------------------------------------------------------
def test_a1111_infotext_sets_every_field(tmp_path):
    out = paste.infotext_values(A1111_INFOTEXT, options=options(infotext_styles="Ignore"))
    assert out is not None
    assert out.values == {
        "prompt": "masterpiece, a castle on a hill, (sunset:1.2)",
        "negative_prompt": "blurry, lowres",
        "sampler_name": "DPM++ 2M",
        "scheduler": "Automatic",  # Karras is DPM++ 2M's default: A1111 pastes it as Automatic
        "steps": 28,
        "cfg_scale": 6.5,
        "seed": 3735928559,
        "width": 640,
        "height": 448,
        "subseed": 42,
        "subseed_strength": 0.25,
        "seed_resize_from_w": 512,
        "seed_resize_from_h": 512,
        "seed_enable_extras": True,
        "tiling": False,  # the infotext has no "Tiling: True"
        # A1111's defaults for the img2img keys the infotext lacks (only img2img's ↙️ sets them)
        "inpainting_mask_invert": "Inpaint masked",
        "inpainting_fill": "original",
        "inpaint_full_res": "Whole picture",
        "inpaint_full_res_padding": 32,
        # A1111's defaults for the Hires. fix accordion (off: no denoising strength in the infotext)
        **HIRES_DEFAULTS,
    }
    assert isinstance(out.values["steps"], int) and isinstance(out.values["seed"], int)
    # settings are listed (not applied); the checkpoint is never switched
    assert out.settings == {"Clip skip": "2", "ENSD": "31337", "RNG": "GPU"}
    note = paste.note_html(out, "")
    assert "Clip skip: 2" in note and "ENSD: 31337" in note and "not applied" in note


@pytest.mark.parametrize(
    ("sampler", "schedule", "expected"),
    [
        ("DPM++ 2M Karras", None, ("DPM++ 2M", "Automatic")),
        ("Euler a Karras", None, ("Euler a", "Karras")),
        ("DPM++ 2M SDE Exponential", None, ("DPM++ 2M SDE", "Automatic")),
        ("DPM++ 2M", "Exponential", ("DPM++ 2M", "Exponential")),
        ("DPM++ 2M", "Karras", ("DPM++ 2M", "Automatic")),
        ("Euler a", "Automatic", ("Euler a", "Automatic")),
        ("k_euler", None, ("Euler", "Automatic")),
        ("DDIM", None, ("DDIM", "Automatic")),
        ("DPM++ 2M SDE Heun Karras", None, ("DPM++ 2M SDE Heun", "Karras")),
        ("DPM++ 2M SDE Heun Exponential", None, ("DPM++ 2M SDE Heun", "Automatic")),
        ("DPM++ 3M SDE Karras", None, ("DPM++ 3M SDE", "Karras")),
        ("DPM++ 3M SDE", "Align Your Steps", ("DPM++ 3M SDE", "Align Your Steps")),
        ("Restart", "Karras", ("Restart", "Automatic")),
        ("Euler", "KL Optimal", ("Euler", "KL Optimal")),
        ("DPM adaptive", None, ("DPM adaptive", "Automatic")),
        ("DDIM CFG++", None, ("DDIM CFG++", "Automatic")),
    ],
)
def test_sampler_names_old_and_new(sampler, schedule, expected):
    sched = f", Schedule type: {schedule}" if schedule else ""
    text = f"a cat\nSteps: 20, Sampler: {sampler}{sched}, CFG scale: 7, Seed: 1, Size: 512x512"
    out = paste.infotext_values(text)
    assert (out.values["sampler_name"], out.values["scheduler"]) == expected
    assert out.notes == []


def test_unknown_sampler_and_schedule_fall_back_with_a_note():
    text = "a cat\nSteps: 20, Sampler: Made Up, Schedule type: Karras Exponential, CFG scale: 7"
    out = paste.infotext_values(text)
    assert (out.values["sampler_name"], out.values["scheduler"]) == ("DPM++ 2M", "Automatic")
    assert any("Made Up" in n for n in out.notes) and any("Karras Exponential" in n for n in out.notes)


def test_missing_fields_are_left_alone():
    out = paste.infotext_values("a dog\nSteps: 9, CFG scale: 4, Seed: 5")
    assert out.values == {
        "prompt": "a dog",
        "negative_prompt": "",
        "steps": 9,
        "cfg_scale": 4.0,
        "seed": 5,
        "seed_enable_extras": False,
        "tiling": False,  # A1111 writes "Tiling: True" only for a tiled image
        # A1111's defaults for img2img keys an infotext lacks (only img2img's ↙️ has these controls)
        "inpainting_mask_invert": "Inpaint masked",
        "inpainting_fill": "original",
        "inpaint_full_res": "Whole picture",
        "inpaint_full_res_padding": 32,
        # and for the Hires. fix accordion (txt2img)
        **HIRES_DEFAULTS,
    }
    result = outputs_of(
        paste.paste("a dog\nSteps: 9, CFG scale: 4, Seed: 5", Path("/nonexistent"), None, None)
    )
    for name in ("sampler_name", "scheduler", "width", "height", "batch_size", "subseed", "styles"):
        assert result[name] == SKIP, name
    assert result["steps"] == 9 and result["note"] == ""


def test_batch_size_and_multiline_prompts():
    text = "line one\nline two\nNegative prompt: bad\nworse\nSteps: 3, Batch size: 4, Seed: 7, Size: 64x128"
    out = paste.infotext_values(text)
    assert out.values["prompt"] == "line one\nline two"
    assert out.values["negative_prompt"] == "bad\nworse"
    assert (out.values["batch_size"], out.values["width"], out.values["height"]) == (4, 64, 128)


def test_bad_numbers_are_skipped_with_a_note():
    out = paste.infotext_values("x\nSteps: lots, CFG scale: 7, Seed: 12")
    assert "steps" not in out.values and out.values["seed"] == 12
    assert any("Steps" in n for n in out.notes)


@pytest.mark.parametrize("text", ["", "   ", "just a prompt", "a prompt\nover two lines", "a, b: c\nd: e, f"])
def test_text_that_is_not_an_infotext_changes_nothing(text):
    if text.strip():
        assert paste.infotext_values(text) is None
    result = outputs_of(paste.paste(text, Path("/nonexistent/params.txt"), None, Options()))
    assert all(result[name] == SKIP for name in paste.FIELDS)
    assert "sumi-note" in result["note"]


INFOTEXT_WITH_STYLES = (
    "masterpiece, a red fox\nNegative prompt: blurry, lowres\nSteps: 2, CFG scale: 7, Seed: 1"
)


@pytest.mark.parametrize(
    ("mode", "prompt", "negative", "styles"),
    [
        ("Apply if any", "a red fox", "", ["quality", "clean"]),
        ("Apply", "a red fox", "", ["quality", "clean"]),
        ("Discard", "a red fox", "", None),
        ("Ignore", "masterpiece, a red fox", "blurry, lowres", None),
    ],
)
def test_styles_per_infotext_styles_option(tmp_path, mode, prompt, negative, styles):
    out = paste.infotext_values(INFOTEXT_WITH_STYLES, styles_db(tmp_path), options(infotext_styles=mode))
    assert out.values["prompt"] == prompt and out.values["negative_prompt"] == negative
    assert sorted(out.values["styles"]) == sorted(styles) if styles else "styles" not in out.values
    # the styles put back give the original prompts
    if styles:
        db = styles_db(tmp_path)
        assert db.apply_styles_to_prompt(prompt, styles) == "masterpiece, a red fox"
        assert db.apply_negative_styles_to_prompt(negative, styles) == "blurry, lowres"


def test_styles_when_none_is_found(tmp_path):
    text = "a plain prompt\nSteps: 2, CFG scale: 7, Seed: 1"
    apply = paste.infotext_values(text, styles_db(tmp_path), options(infotext_styles="Apply"))
    assert apply.values["styles"] == []  # Apply always replaces the selection
    if_any = paste.infotext_values(text, styles_db(tmp_path), options(infotext_styles="Apply if any"))
    assert "styles" not in if_any.values  # Apply if any keeps it
    assert Options().infotext_styles == "Apply if any"


def test_empty_prompt_reads_params_txt(tmp_path):
    params = tmp_path / "params.txt"
    params.write_text("a saved prompt\nSteps: 2, Sampler: Euler a, CFG scale: 7, Seed: 99, Size: 64x64")
    result = outputs_of(paste.paste("", params, None, Options()))
    assert result["prompt"] == "a saved prompt" and result["steps"] == 2 and result["seed"] == 99
    assert (result["sampler_name"], result["scheduler"]) == ("Euler a", "Automatic")
    missing = outputs_of(paste.paste("", tmp_path / "none.txt", None, Options()))
    assert "no last generation" in missing["note"]


def test_a_sumi_infotext_round_trips(tmp_path):
    """What Sumi writes for a job pastes back to the values that made it."""
    from modules.sumi.services.jobs.infotext import build_infotext

    text = build_infotext(
        "a fox",
        "ugly",
        {
            "Steps": 12,
            "Sampler": "Euler",
            "Schedule type": "Karras",
            "CFG scale": 5.5,
            "Seed": 77,
            "Size": "128x64",
            "Variation seed": 8,
            "Variation seed strength": 0.5,
            "RNG": "CPU",
        },
    )
    out = paste.infotext_values(text, options=Options())
    v = ui.Txt2ImgValues(**{k: v for k, v in out.values.items() if k in paste.FIELDS})
    p = ui.build_processing(v)
    assert (p.prompt, p.negative_prompt, p.sampler_name, p.scheduler) == ("a fox", "ugly", "Euler", "Karras")
    assert (p.steps, p.cfg_scale, p.seed, p.width, p.height) == (12, 5.5, 77, 128, 64)
    assert (p.subseed, p.subseed_strength, p.seed_enable_extras) == (8, 0.5, True)
    assert out.settings == {}  # RNG: CPU is Sumi's default
