"""A1111's ↙️ paste button: read generation parameters from the prompt box (or the last generation) into the UI.

If the prompt box holds an infotext (its last line lists at least 3 `Key: value` pairs, A1111's test),
that text is parsed; if the prompt box is empty, `<data>/params.txt` (the last job's infotext) is read.
The parsed values are written into the txt2img controls; a control whose key the infotext lacks keeps
its value. Text that is not an infotext changes nothing.

As in A1111: old sampler names ("DPM++ 2M Karras") are split into sampler and schedule type, and a
schedule type equal to the sampler's default becomes "Automatic"; an unknown sampler becomes the first
one; the Extra checkbox is ticked when the infotext has a variation seed strength or a seed-resize
size, and unticked otherwise; style texts are taken out of the prompts per opt `infotext_styles`.

Unlike A1111 there is no "Override settings" dropdown: settings named in the infotext (`Clip skip: 2`,
`ENSD: 31337`, ...) that differ from the current settings are listed in a note instead, and not applied.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES, find_sampler, find_schedule_type
from modules.sumi.frontends.gradio.paste_buttons import field_value, parse_infotext
from modules.sumi.services.jobs import hires, infotext
from modules.sumi.services.jobs.img2img import MASKED_CONTENT, RESIZE_MODES

if TYPE_CHECKING:
    from modules.sumi.app import App
    from modules.sumi.services.settings.options import Options
    from modules.sumi.services.settings.styles import StyleDatabase

# The controls the paste button sets, in the order of its outputs (names as in Txt2ImgValues).
FIELDS = (
    "prompt",
    "negative_prompt",
    "styles",
    "sampler_name",
    "scheduler",
    "steps",
    "width",
    "height",
    "batch_size",
    "cfg_scale",
    "seed",
    "seed_enable_extras",
    "subseed",
    "subseed_strength",
    "seed_resize_from_w",
    "seed_resize_from_h",
    "restore_faces",
    "tiling",
)

# the img2img tab's own controls ↙️ also sets (names as in img2img.Img2ImgValues)
IMG2IMG_ONLY = (
    "denoising_strength",
    "image_cfg_scale",
    "mask_blur",
    "inpainting_mask_invert",
    "inpainting_fill",
    "resize_mode",
    "inpaint_full_res",
    "inpaint_full_res_padding",
)
IMG2IMG_FIELDS = FIELDS + IMG2IMG_ONLY
IMG2IMG_FLOAT_KEYS = {"denoising_strength": "Denoising strength", "image_cfg_scale": "Image CFG scale"}
# A1111 writes "Masked area padding"; "Only masked padding" is accepted too
IMG2IMG_INT_KEYS = {
    "mask_blur": ("Mask blur",),
    "inpaint_full_res_padding": ("Masked area padding", "Only masked padding"),
}
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")
# radio controls: infotext key, the radio's choices (the infotext holds the label)
IMG2IMG_CHOICES = {
    "inpainting_mask_invert": ("Mask mode", MASK_MODES),
    "inpainting_fill": ("Masked content", tuple(MASKED_CONTENT)),
    "resize_mode": ("Resize mode", tuple(RESIZE_MODES)),
    "inpaint_full_res": ("Inpaint area", INPAINT_AREAS),
}

# control -> infotext key, for the plain numeric fields
INT_KEYS = {
    "steps": "Steps",
    "width": "Size-1",
    "height": "Size-2",
    "batch_size": "Batch size",
    "seed": "Seed",
    "subseed": "Variation seed",
    "seed_resize_from_w": "Seed resize from-1",
    "seed_resize_from_h": "Seed resize from-2",
}
FLOAT_KEYS = {"cfg_scale": "CFG scale", "subseed_strength": "Variation seed strength"}

STYLE_MODES = ("Ignore", "Apply", "Discard", "Apply if any")
# settings never offered from an infotext (A1111's opt `disable_weights_auto_swap` defaults to True)
NOT_OFFERED_SETTINGS = frozenset({"sd_model_checkpoint", "tiling"})  # tiling: the Tiling checkbox


@dataclass
class Pasted:
    """What pasting one text does: new control values (only those to change) and notes for the user."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)  # "Clip skip" -> "2": settings not applied


def is_infotext(text: str | None) -> bool:
    """Whether `text` holds generation parameters: its last non-blank line passes A1111's test."""
    stripped = (text or "").strip()
    return bool(stripped) and infotext.is_params_line(stripped.split("\n")[-1])


def _int(text: str) -> int:
    """A1111 casts into int components through float ("20.0" -> 20); big seeds stay exact."""
    try:
        return int(text.strip())
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def sampler_and_schedule(sampler: str, schedule: str | None) -> tuple[str, str, list[str]]:
    """(sampler, schedule type label, notes) as A1111's `get_sampler_and_scheduler` resolves them for the UI."""
    notes = []
    try:
        find_schedule_type(schedule)
    except InvalidRequestError:
        notes.append(f"Schedule type {schedule!r} is not available; using Automatic.")
        schedule = None
    try:
        spec, stype = find_sampler(sampler, schedule)
    except InvalidRequestError:
        spec, stype = SAMPLERS[0], SCHEDULE_TYPES[0]
        notes.append(f"Sampler {sampler!r} is not available; using {spec.name}.")
    if spec.schedules and stype.name == find_schedule_type(spec.default_schedule).name:
        stype = SCHEDULE_TYPES[0]  # the sampler's default schedule is what "Automatic" means
    return spec.name, stype.label, notes


def apply_style_mode(
    res: dict[str, Any], styles: StyleDatabase | None, mode: str
) -> tuple[str, str, list[str] | None]:
    """(prompt, negative prompt, styles to select or None to keep the dropdown) per opt `infotext_styles`."""
    prompt, negative = res.get("Prompt", ""), res.get("Negative prompt", "")
    if styles is None or mode not in STYLE_MODES or mode == "Ignore":
        return prompt, negative, None
    found, prompt, negative = styles.extract_styles_from_prompt(prompt, negative)
    if mode == "Apply" or (mode == "Apply if any" and found):
        return prompt, negative, found
    return prompt, negative, None


def settings_in_infotext(res: Mapping[str, str], options: Options | None) -> dict[str, str]:
    """{infotext label: value} for the settings the infotext names with a value other than the current one."""
    if options is None:
        return {}
    labels = {
        key: info.infotext
        for key, info in options.data_labels.items()
        if info.infotext and key not in NOT_OFFERED_SETTINGS
    }
    differing: dict[str, str] = {}
    for key, text in infotext.infotext_to_setting_values(res, labels).items():
        try:
            value = options.cast_value(key, text)
        except (TypeError, ValueError):
            try:
                value = options.cast_value(key, float(text))
            except (TypeError, ValueError):
                value = text
        if value != getattr(options, key):
            differing[labels[key]] = text
    return differing


def infotext_values(
    text: str, styles: StyleDatabase | None = None, options: Options | None = None
) -> Pasted | None:
    """The control values an infotext sets (None when `text` is not an infotext)."""
    if not is_infotext(text):
        return None
    skip = (options.data.get("infotext_skip_pasting") or []) if options is not None else []
    backcompat = bool(options.data.get("auto_backcompat", True)) if options is not None else True
    res: dict[str, Any] = infotext.parse_infotext(text, skip_fields=skip, auto_backcompat=backcompat)
    mode = str(options.data.get("infotext_styles", "Apply if any")) if options is not None else "Apply if any"
    out = Pasted()
    prompt, negative, selected = apply_style_mode(res, styles, mode)
    if "Prompt" in res:
        out.values["prompt"] = prompt
    if "Negative prompt" in res:
        out.values["negative_prompt"] = negative
    if selected is not None:
        out.values["styles"] = selected
    if res.get("Sampler"):
        sampler, schedule, notes = sampler_and_schedule(res["Sampler"], res.get("Schedule type"))
        out.values["sampler_name"], out.values["scheduler"] = sampler, schedule
        out.notes.extend(notes)
    for name, key in INT_KEYS.items():
        _set(out, name, key, res, _int)
    for name, key in FLOAT_KEYS.items():
        _set(out, name, key, res, float)
    strength = out.values.get("subseed_strength", 0.0)
    resize = out.values.get("seed_resize_from_w", 0) > 0 and out.values.get("seed_resize_from_h", 0) > 0
    out.values["seed_enable_extras"] = bool(strength) or resize
    if res.get("Face restoration"):  # A1111 writes the restorer's name; absent: left alone
        out.values["restore_faces"] = True
    out.values["tiling"] = str(res.get("Tiling", "")).strip() == "True"  # A1111 writes it only when on
    _img2img_values(out, res)
    out.values.update(hires.fields_from_infotext(res))  # txt2img's Hires. fix accordion
    out.settings = settings_in_infotext(res, options)
    return out


def _img2img_values(out: Pasted, res: Mapping[str, str]) -> None:
    """The img2img controls' values (a txt2img tab ignores them: they are not among its outputs)."""
    for name, key in IMG2IMG_FLOAT_KEYS.items():
        _set(out, name, key, res, float)
    for name, keys in IMG2IMG_INT_KEYS.items():
        for key in keys:
            _set(out, name, key, res, _int)
    for name, (key, choices) in IMG2IMG_CHOICES.items():
        if key not in res:
            continue
        text = str(res[key]).strip()
        if text in choices:
            out.values[name] = text
        elif text.isdigit() and int(text) < len(choices):  # an index, as the API's values
            out.values[name] = choices[int(text)]
        else:
            out.notes.append(f"Ignored {key}: {text!r} is not one of {', '.join(choices)}.")


def _set(out: Pasted, name: str, key: str, res: Mapping[str, str], cast: Any) -> None:
    if key not in res:
        return
    try:
        out.values[name] = cast(res[key])
    except (TypeError, ValueError):
        out.notes.append(f"Ignored {key}: {res[key]!r} is not a number.")


def read_params_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def note_html(pasted: Pasted | None, source: str) -> str:
    """The message shown under the gallery after a paste ("" when there is nothing to say)."""
    if pasted is None:
        return _note(source)
    lines = list(pasted.notes)
    if pasted.settings:
        listed = ", ".join(f"{k}: {v}" for k, v in pasted.settings.items())
        lines.append(f"Settings in the pasted infotext that differ from yours (not applied): {listed}")
    return "".join(_note(line) for line in lines)


def _note(message: str) -> str:
    return f'<div class="sumi-note">{html.escape(message)}</div>'


def paste(
    prompt: str | None,
    params_file: Path,
    styles: StyleDatabase | None,
    options: Options | None,
    names: Sequence[str] = FIELDS,
) -> tuple[Any, ...]:
    """Handler of the ↙️ button: one output per `names` entry (skip = unchanged), then the note."""
    text = prompt or ""
    if not text.strip():
        text = read_params_file(params_file) or ""
        problem = f"There is no last generation to read ({params_file} is missing or empty)."
        if text.strip() and not is_infotext(text):
            problem = f"{params_file} holds no generation parameters."
    else:
        problem = (
            "The prompt box holds no generation parameters: paste a whole infotext "
            "(its last line like 'Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, ...'), "
            "or empty the prompt box to read the last generation."
        )
    pasted = infotext_values(text, styles, options) if text.strip() else None
    values = pasted.values if pasted is not None else {}
    return (*(values[name] if name in values else gr.skip() for name in names), note_html(pasted, problem))


def wire_paste(
    app: App,
    button: gr.Button,
    controls: Mapping[str, Any],
    note: gr.HTML,
    extra_fields: Sequence[tuple[Any, Any]] = (),
    names: Sequence[str] = FIELDS,
) -> None:
    """Connect the ↙️ button to the tab's controls `names` (FIELDS on txt2img, IMG2IMG_FIELDS on
    img2img); the note goes to `note` (the tab's message area).

    `extra_fields` are A1111 `(component, infotext key or function)` pairs (scripts' `infotext_fields`),
    filled from the same infotext in the same event."""
    extra = list(extra_fields)

    def handler(prompt: str | None) -> tuple[Any, ...]:
        values = paste(prompt, app.paths.params_file, app.styles, app.options, names)
        return (
            *values,
            *extra_values(prompt or read_params_file(app.paths.params_file) or "", extra, app.options),
        )

    button.click(
        handler,
        inputs=controls["prompt"],
        outputs=[*(controls[name] for name in names), note, *(component for component, _ in extra)],
        concurrency_limit=None,
        show_progress="hidden",
        api_visibility="undocumented",
    )


def extra_values(text: str, fields: Sequence[tuple[Any, Any]], options: Any = None) -> list[Any]:
    """Values for scripts' fields from an infotext, as A1111's paste does (skip: unchanged)."""
    if not fields:
        return []
    params = parse_infotext(text, options) if is_infotext(text) else {}
    return [field_value(component, key, params) for component, key in fields]
