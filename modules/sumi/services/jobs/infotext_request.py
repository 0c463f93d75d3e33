"""The API's `infotext` request field (A1111 1.8+ `Api.apply_infotext`): a whole infotext fills the request.

Every field the infotext holds and the request did not send is taken from it (the request's own values
win); settings the infotext names (`Clip skip: 2`, `Tiling: True`, ...) that differ from the current ones
go to `override_settings`, unless the request overrides that setting itself. As in A1111 the checkpoint
(`Model hash`) is not switched (opt `disable_weights_auto_swap`). Fields of the infotext that the request
model does not have are left out (they reach a job only through fields Sumi has).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from modules.sumi.services.jobs.img2img import MASKED_CONTENT, RESIZE_MODES
from modules.sumi.services.jobs.infotext import infotext_to_setting_values, parse_infotext
from modules.sumi.services.settings.options import Options

NOT_OFFERED_SETTINGS = frozenset({"sd_model_checkpoint"})  # A1111's disable_weights_auto_swap (default on)
# A1111's "same as the first pass" values: the field keeps its default
SAME_AS_FIRST_PASS = frozenset({"Use same sampler", "Use same scheduler", "Use same checkpoint"})


def _whole(text: str) -> int:
    return int(float(text))


def _choice(choices: list[str]) -> Callable[[str], int]:
    def cast(text: str) -> int:
        return choices.index(text) if text in choices else int(text)

    return cast


# infotext key -> (request field, cast of the text); A1111's txt2img and img2img paste fields with `api`
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Prompt": ("prompt", str),
    "Negative prompt": ("negative_prompt", str),
    "Steps": ("steps", _whole),
    "Sampler": ("sampler_name", str),
    "Schedule type": ("scheduler", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", _whole),
    "Size-1": ("width", _whole),
    "Size-2": ("height", _whole),
    "Batch size": ("batch_size", _whole),
    "Variation seed": ("subseed", _whole),
    "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", _whole),
    "Seed resize from-2": ("seed_resize_from_h", _whole),
    "Denoising strength": ("denoising_strength", float),
    "Image CFG scale": ("image_cfg_scale", float),
    "Mask blur": ("mask_blur", _whole),
    "Masked area padding": ("inpaint_full_res_padding", _whole),
    "Masked content": ("inpainting_fill", _choice(MASKED_CONTENT)),
    "Resize mode": ("resize_mode", _choice(RESIZE_MODES)),
    "Mask mode": ("inpainting_mask_invert", _choice(["Inpaint masked", "Inpaint not masked"])),
    "Inpaint area": ("inpaint_full_res", lambda text: text == "Only masked"),
    "Hires upscale": ("hr_scale", float),
    "Hires steps": ("hr_second_pass_steps", _whole),
    "Hires upscaler": ("hr_upscaler", str),
    "Hires resize-1": ("hr_resize_x", _whole),
    "Hires resize-2": ("hr_resize_y", _whole),
    "Hires checkpoint": ("hr_checkpoint_name", str),
    "Hires sampler": ("hr_sampler_name", str),
    "Hires schedule type": ("hr_scheduler", str),
    "Hires prompt": ("hr_prompt", str),
    "Hires negative prompt": ("hr_negative_prompt", str),
    "Refiner": ("refiner_checkpoint", str),
    "Refiner switch at": ("refiner_switch_at", float),
}


def fields_from_infotext(text: str, accepted: Collection[str], sent: Collection[str]) -> dict[str, Any]:
    """{request field: value} for the fields `text` holds, the model has (`accepted`) and the request
    did not send (`sent`). A value the field cannot take is left out (the request keeps its default)."""
    params = parse_infotext(text)
    values: dict[str, Any] = {}
    for key, (name, cast) in FIELDS.items():
        raw = params.get(key)
        if raw is None or name not in accepted or name in sent or raw in SAME_AS_FIRST_PASS:
            continue
        try:
            values[name] = cast(raw)
        except (TypeError, ValueError):
            continue
    if "enable_hr" in accepted and "enable_hr" not in sent and _used_hires(params):
        values["enable_hr"] = True
    return values


def _used_hires(params: Mapping[str, str]) -> bool:
    """A1111's paste rule for the Hires. fix checkbox: a denoising strength and a hires key."""
    resized = params.get("Hires resize-1", "0") not in ("0", "", None)
    hires = "Hires upscale" in params or "Hires upscaler" in params or resized
    return "Denoising strength" in params and hires


def settings_from_infotext(text: str, options: Options, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """{setting: value} the infotext names with a value other than the current one, for the settings
    the request's own `overrides` do not set (A1111's `get_override_settings`)."""
    labels = {
        key: info.infotext
        for key, info in options.data_labels.items()
        if info.infotext and key not in NOT_OFFERED_SETTINGS and key not in overrides
    }
    found: dict[str, Any] = {}
    for key, text_value in infotext_to_setting_values(parse_infotext(text), labels).items():
        try:
            value = options.cast_value(key, text_value)
        except (TypeError, ValueError):
            continue
        if value is not None and value != getattr(options, key, None):
            found[key] = value
    return found
