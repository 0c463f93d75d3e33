"""The API's `infotext` field (services.jobs.infotext_request) and the table of fields Sumi does not
honour (services.jobs.ignored_fields): what each takes from an infotext, and when each warns."""

from __future__ import annotations

from types import SimpleNamespace

from modules.sumi.services.jobs import ignored_fields, infotext_request
from modules.sumi.services.settings.options import Options

TEXT = (
    "a castle\nNegative prompt: fog\nSteps: 12, Sampler: Euler a, Schedule type: Karras, CFG scale: 5, "
    "Seed: 9, Size: 64x80, Denoising strength: 0.4, Masked content: latent noise, Inpaint area: Only masked, "
    "Hires upscale: 2, Hires sampler: Use same sampler, Clip skip: 2, Tiling: True, Model hash: 0123456789"
)
ACCEPTED = {"prompt", "negative_prompt", "steps", "sampler_name", "scheduler", "cfg_scale", "seed", "width",
            "height", "denoising_strength", "inpainting_fill", "inpaint_full_res", "enable_hr", "hr_scale",
            "hr_sampler_name"}  # fmt: skip


def test_fields_the_request_did_not_send_come_from_the_infotext():
    values = infotext_request.fields_from_infotext(TEXT, ACCEPTED, sent={"seed"})
    assert values == {
        "prompt": "a castle",
        "negative_prompt": "fog",
        "steps": 12,
        "sampler_name": "Euler a",
        "scheduler": "Karras",
        "cfg_scale": 5.0,
        "width": 64,
        "height": 80,
        "denoising_strength": 0.4,
        "inpainting_fill": 2,  # A1111's label -> the API's index
        "inpaint_full_res": True,
        "hr_scale": 2.0,
        "enable_hr": True,  # a denoising strength with hires keys: Hires. fix was on
    }  # seed was sent; "Use same sampler" keeps hr_sampler_name's default


def test_fields_the_model_lacks_are_left_out():
    assert infotext_request.fields_from_infotext(TEXT, {"steps"}, sent=set()) == {"steps": 12}


def test_settings_in_the_infotext_become_overrides_unless_current_or_overridden():
    options = Options()
    found = infotext_request.settings_from_infotext(TEXT, options, overrides={})
    assert found["CLIP_stop_at_last_layers"] == 2 and found["tiling"] is True
    assert "sd_model_checkpoint" not in found  # the checkpoint is never switched from an infotext
    assert "CLIP_stop_at_last_layers" not in infotext_request.settings_from_infotext(
        TEXT, options, overrides={"CLIP_stop_at_last_layers": 3}
    )
    options.set("CLIP_stop_at_last_layers", 2)
    assert "CLIP_stop_at_last_layers" not in infotext_request.settings_from_infotext(TEXT, options, {})


def test_fields_sumi_does_not_honour_warn_only_for_values_that_would_change_something():
    assert ignored_fields.warnings_for(SimpleNamespace(comments={})) == []
    warnings = ignored_fields.warnings_for(SimpleNamespace(comments={"x": 1}))
    assert len(warnings) == 1 and "comments" in warnings[0] and "not honoured" in warnings[0]


def test_every_ignored_field_says_why():
    assert all(entry.reason for entry in ignored_fields.IGNORED_FIELDS.values())
    assert ignored_fields.unknown_fields_warning([]) == []
    assert "a, b" in ignored_fields.unknown_fields_warning(["b", "a"])[0]
