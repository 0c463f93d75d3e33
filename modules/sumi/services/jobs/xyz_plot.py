"""X/Y/Z plot (A1111's built-in script): one image per combination of up to three axes of values.

Axis types are indices into A1111's axis list of the tab (txt2img and img2img each have their own: A1111
lists some axes on one tab only, e.g. Hires steps on txt2img, Image CFG Scale on img2img), so API clients
send the same numbers; the axes Sumi cannot vary (hires fix, refiner, face restore, ...) keep their place
but are refused with a clear message (the UI does not offer them). Values are CSV with A1111's ranges: `1-5`, `1-10 (+3)`,
`1-10 [4]` for whole numbers and `0-1 (+0.25)`, `0-1 [5]` for decimals. Every value and every cell is
checked before the first image; the costliest axis (checkpoint, then VAE) is iterated outermost.
Settings axes go through `override_settings`, which each job sees in its own view of the settings. The result is the Z grid (the
X×Y grids side by side) first, then the X×Y grids and the cells when asked for.

`modules/sumi/builtin_scripts/xyz_grid.py` is the A1111-style script and its controls; the work is here.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from modules.sumi.engine.accel.fp8 import SETTING_CHOICES as FP8_SETTING_CHOICES
from modules.sumi.engine.errors import EngineError, Interrupted, InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, SCHEDULE_TYPES, find_sampler, find_schedule_type
from modules.sumi.services.images.grids import GridAnnotation, draw_grid_annotations
from modules.sumi.services.images.saving import image_grid
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing
from modules.sumi.services.jobs.script_jobs import (
    Collected,
    check_grid_size,
    fix_seed,
    grid_style,
    job_copy,
    random_seed,
    save_grid,
    validate_jobs,
    with_params,
)
from modules.sumi.services.jobs.xyz_controlnet import CONTROLNET_AXES
from modules.sumi.services.jobs.xyz_extension_axes import sumi_axis

TITLE = "X/Y/Z plot"
MAX_AXIS_VALUES = 1000
PERMUTATIONS = "permutations"
SEED_AXES = ("Seed", "Var. seed")
RNG_SOURCES = ("GPU", "CPU", "NV")
FP8_MODES = FP8_SETTING_CHOICES

# --- values ----------------------------------------------------------------------------------------

_INT = r"[+-]?\s*\d+"
_FLOAT = r"[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)"
RE_INT_RANGE = re.compile(rf"\s*({_INT})\s*-\s*({_INT})(?:\s*\(\s*({_INT})\s*\))?\s*")
RE_INT_COUNT = re.compile(rf"\s*({_INT})\s*-\s*({_INT})\s*\[\s*(\d+)\s*\]\s*")
RE_FLOAT_RANGE = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})(?:\s*\(\s*({_FLOAT})\s*\))?\s*")
RE_FLOAT_COUNT = re.compile(rf"\s*({_FLOAT})\s*-\s*({_FLOAT})\s*\[\s*(\d+)\s*\]\s*")


def split_csv(text: str) -> list[str]:
    """CSV values (quotes allowed, several lines allowed), stripped."""
    rows = csv.reader(io.StringIO(text or ""), skipinitialspace=True)
    return [value.strip() for row in rows for value in row]


def to_csv(values: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(list(values))
    return out.getvalue().strip()


def _number(text: str) -> str:
    return text.replace(" ", "")


def _check_count(count: int, text: str) -> None:
    if count < 1:
        raise InvalidRequestError(f"the range {text!r} gives no values")
    if count > MAX_AXIS_VALUES:
        raise InvalidRequestError(
            f"the range {text!r} gives {count} values; at most {MAX_AXIS_VALUES} are allowed"
        )


def _step_count(start: float, end: float, step: float, text: str) -> int:
    if step == 0:
        raise InvalidRequestError(f"the range {text!r} has a step of 0")
    count = math.floor((end - start) / step + 1e-9) + 1
    _check_count(count, text)
    return count


def int_range(text: str) -> list[int] | None:
    """`1-5`, `1-10 (+3)` (inclusive, step) or `1-10 [4]` (count, evenly spaced); None if not a range."""
    if match := RE_INT_COUNT.fullmatch(text):
        start, end, count = int(_number(match[1])), int(_number(match[2])), int(match[3])
        _check_count(count, text)
        return [int(v) for v in np.linspace(start, end, count)]
    if match := RE_INT_RANGE.fullmatch(text):
        start, end = int(_number(match[1])), int(_number(match[2]))
        step = int(_number(match[3])) if match[3] else (1 if end >= start else -1)
        count = _step_count(start, end, step, text)
        return [start + i * step for i in range(count)]
    return None


def float_range(text: str) -> list[float] | None:
    """`0-1 (+0.25)` (inclusive, step) or `0-1 [5]` (count, evenly spaced); None if not a range."""
    if match := RE_FLOAT_COUNT.fullmatch(text):
        start, end, count = float(_number(match[1])), float(_number(match[2])), int(match[3])
        _check_count(count, text)
        return [float(v) for v in np.linspace(start, end, count)]
    if match := RE_FLOAT_RANGE.fullmatch(text):
        start, end = float(_number(match[1])), float(_number(match[2]))
        step = float(_number(match[3])) if match[3] else (1.0 if end >= start else -1.0)
        count = _step_count(start, end, step, text)
        return [round(start + i * step, 10) for i in range(count)]
    return None


def expand_values(kind: Any, items: Sequence[str]) -> list[Any]:
    """Typed values of an axis: ranges expanded for int and float axes, permutations for Prompt order."""
    if kind is PERMUTATIONS:
        if math.factorial(len(items)) > MAX_AXIS_VALUES:
            raise InvalidRequestError(f"{len(items)} values have too many orders (at most {MAX_AXIS_VALUES})")
        return list(itertools.permutations(items))
    if kind not in (int, float):
        return list(items)
    values: list[Any] = []
    for item in items:
        expanded = int_range(item) if kind is int else float_range(item)
        values += expanded if expanded is not None else [_convert(kind, item)]
    return values


def _convert(kind: type, item: str) -> Any:
    try:
        return kind(_number(item))
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise InvalidRequestError(f"{item!r} is not {what} or a range") from None


# --- axes --------------------------------------------------------------------------------------------

Apply = Callable[[StableDiffusionProcessing, Any, list], None]
Confirm = Callable[[Any, StableDiffusionProcessing, list], list]


@dataclass(frozen=True)
class AxisOption:
    label: str
    type: Any = str
    apply: Apply | None = None  # None: an A1111 axis that Sumi does not offer
    format_value: Callable[[AxisOption, Any], str] | None = None  # None: "Label: value"
    confirm: Confirm | None = None  # checks the values up front and returns them normalised
    cost: float = 0.0
    choices: Callable[[Any], list[str]] | None = None
    tab: str | None = None  # A1111's AxisOptionTxt2Img/AxisOptionImg2Img: listed on that tab only
    img2img_only: bool = False  # listed on both tabs, but Sumi varies it in img2img jobs only

    @property
    def supported(self) -> bool:
        return self.apply is not None

    def supported_on(self, is_img2img: bool) -> bool:
        return self.apply is not None and (is_img2img or not self.img2img_only)

    def listed_on(self, is_img2img: bool) -> bool:
        return self.tab is None or self.tab == ("img2img" if is_img2img else "txt2img")

    def legend(self, value: Any) -> str:
        if self.format_value is not None:
            return self.format_value(self, value)
        return f"{self.label}: {round(value, 8) if isinstance(value, float) else value}"


def _field(name: str) -> Apply:
    def apply(p: StableDiffusionProcessing, value: Any, values: list) -> None:
        setattr(p, name, value)

    return apply


def _setting(key: str) -> Apply:
    def apply(p: StableDiffusionProcessing, value: Any, values: list) -> None:
        p.override_settings[key] = value

    return apply


def _prompt_list(value: Any) -> list[str]:
    return list(value) if isinstance(value, list) else [value or ""]


def _replace(value: Any, old: str, new: str) -> Any:
    return (
        [v.replace(old, new) for v in value] if isinstance(value, list) else (value or "").replace(old, new)
    )


def _apply_prompt_sr(p: StableDiffusionProcessing, value: str, values: list) -> None:
    search = values[0]
    texts = _prompt_list(p.prompt) + _prompt_list(p.negative_prompt)
    if not any(search in text for text in texts):
        raise InvalidRequestError(f"Prompt S/R did not find {search!r} in the prompt or the negative prompt")
    p.prompt = _replace(p.prompt, search, value)
    p.negative_prompt = _replace(p.negative_prompt, search, value)


def _reorder(prompt: str, order: Sequence[str]) -> str:
    """`prompt` with the tokens of `order` put in that order, at the places where tokens were found."""
    found = sorted((prompt.find(token), token) for token in order)
    missing = [token for position, token in found if position < 0]
    if missing:
        raise InvalidRequestError(f"Prompt order: {missing[0]!r} is not in the prompt")
    pieces, rest = [], prompt
    for _, token in found:
        at = rest.find(token)
        pieces.append(rest[:at])
        rest = rest[at + len(token) :]
    return "".join(piece + token for piece, token in zip(pieces, order, strict=True)) + rest


def _apply_order(p: StableDiffusionProcessing, value: Sequence[str], values: list) -> None:
    p.prompt = (
        [_reorder(t, value) for t in p.prompt] if isinstance(p.prompt, list) else _reorder(p.prompt, value)
    )


def _apply_styles(p: StableDiffusionProcessing, value: str, values: list) -> None:
    p.styles.extend(_style_names(value))


def _style_names(value: str) -> list[str]:
    return [name.strip() for name in str(value).split(",") if name.strip()]


def parse_size(value: str) -> tuple[int, int]:
    width, sep, height = str(value).lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(width.strip()), int(height.strip())
    except ValueError:
        raise InvalidRequestError(f"Size {value!r} is not WIDTHxHEIGHT, such as 512x768") from None


def _apply_size(p: StableDiffusionProcessing, value: str, values: list) -> None:
    p.width, p.height = parse_size(value)


def _confirm_samplers(app: Any, p: Any, values: list) -> list:
    for value in values:
        find_sampler(value)
    return values


def _confirm_upscalers(app: Any, p: Any, values: list) -> list:
    """Hires upscaler names: a latent mode, or an upscaler of the registry (its own spelling)."""
    latent = app.upscalers.latent_modes()
    return [value if value in latent else app.upscalers.find(value).name for value in values]


def _confirm_schedules(app: Any, p: Any, values: list) -> list:
    return [find_schedule_type(value).label for value in values]


def _confirm_checkpoints(app: Any, p: Any, values: list) -> list:
    titles = []
    for value in values:
        info = app.checkpoints.match(value)
        if info is None:
            raise InvalidRequestError(f"Checkpoint not found: {value!r}")
        titles.append(info.title)
    return titles


def _confirm_refiners(app: Any, p: Any, values: list) -> list:
    """A1111's `confirm_checkpoints_or_none`: checkpoint names, or None / "None" for no refiner."""
    return [
        None if value in (None, "", "None", "none") else _confirm_checkpoints(app, p, [value])[0]
        for value in values
    ]


def _confirm_vaes(app: Any, p: Any, values: list) -> list:
    names = {name.lower(): name for name in app.vaes.names()}
    names["auto"] = names["automatic"]
    found = [names.get(str(value).strip().lower()) for value in values]
    for value, name in zip(values, found, strict=True):
        if name is None:
            raise InvalidRequestError(f"VAE not found: {value!r}; choices: {', '.join(app.vaes.names())}")
    return found


def _confirm_styles(app: Any, p: Any, values: list) -> list:
    for value in values:
        unknown = app.styles.unknown(_style_names(value))
        if unknown:
            raise InvalidRequestError(f"Style not found: {unknown[0]!r}")
    return values


def _confirm_clip_skip(app: Any, p: Any, values: list) -> list:
    if any(value < 1 for value in values):
        raise InvalidRequestError("Clip skip must be 1 or more")
    return values


def _confirm_rng(app: Any, p: Any, values: list) -> list:
    wanted = [str(value).strip().upper() for value in values]
    for value, source in zip(values, wanted, strict=True):
        if source not in RNG_SOURCES:
            raise InvalidRequestError(f"RNG source must be one of {', '.join(RNG_SOURCES)}, got {value!r}")
    return wanted


def _confirm_sizes(app: Any, p: Any, values: list) -> list:
    for value in values:
        parse_size(value)
    return values


def _value_only(axis: AxisOption, value: Any) -> str:
    return str(round(value, 8) if isinstance(value, float) else value)


def _nothing(axis: AxisOption, value: Any) -> str:
    return ""


def _basename(axis: AxisOption, value: Any) -> str:
    return os.path.basename(str(value))


def _joined(axis: AxisOption, value: Any) -> str:
    return ", ".join(value)


def _sampler_axis(tab: str) -> AxisOption:
    return AxisOption(
        "Sampler",
        str,
        _field("sampler_name"),
        format_value=_value_only,
        confirm=_confirm_samplers,
        choices=lambda app: [s.name for s in SAMPLERS],
        tab=tab,
    )


def _switch_setting(label: str, key: str) -> AxisOption:
    """A boolean setting as an axis ("True"/"False", A1111's `apply_override(..., boolean=True)`)."""
    return AxisOption(
        label, str, _setting_switch(key), confirm=_confirm_switch, choices=lambda app: ["True", "False"]
    )


def _setting_switch(key: str) -> Apply:
    def apply(p: StableDiffusionProcessing, value: Any, values: list) -> None:
        p.override_settings[key] = str(value).strip().lower() == "true"

    return apply


def _confirm_switch(app: Any, p: Any, values: list) -> list:
    for value in values:
        if str(value).strip().lower() not in ("true", "false"):
            raise InvalidRequestError(f"this axis takes True or False, got {value!r}")
    return values


def _apply_unipc_order(p: StableDiffusionProcessing, value: Any, values: list) -> None:
    """A1111's: the order, kept under the job's steps."""
    p.override_settings["uni_pc_order"] = max(min(int(value), p.steps - 1), 1)


def _apply_face_restore(p: StableDiffusionProcessing, value: Any, values: list) -> None:
    """A1111's: a restorer's name turns face restoration on with that restorer; true/yes/y/1 turn it on
    with the setting's restorer; anything else turns it off."""
    wanted = str(value).strip().lower()
    models = {"codeformer": "CodeFormer", "gfpgan": "GFPGAN"}
    if wanted in models:
        p.restore_faces = True
        p.override_settings["face_restoration_model"] = models[wanted]
    else:
        p.restore_faces = wanted in ("true", "yes", "y", "1")


def _confirm_fp8(app: Any, p: Any, values: list) -> list:
    for value in values:
        if value not in FP8_MODES:
            raise InvalidRequestError(f"FP8 mode must be one of {', '.join(FP8_MODES)}, got {value!r}")
    return values


def _in_img2img(label: str, name: str) -> AxisOption:
    """An axis on both tabs that only img2img jobs have a field for in Sumi (txt2img's is the hires pass)."""
    return AxisOption(label, float, _field(name), img2img_only=True)


AXES: tuple[AxisOption, ...] = (  # A1111's list of both tabs, in its order
    AxisOption("Nothing", str, lambda p, x, xs: None, format_value=_nothing),
    AxisOption("Seed", int, _field("seed")),
    AxisOption("Var. seed", int, _field("subseed")),
    AxisOption("Var. strength", float, _field("subseed_strength")),
    AxisOption("Steps", int, _field("steps")),
    AxisOption("Hires steps", int, _field("hr_second_pass_steps"), tab="txt2img"),
    AxisOption("CFG Scale", float, _field("cfg_scale")),
    AxisOption("Image CFG Scale", float, _field("image_cfg_scale"), tab="img2img"),
    AxisOption("Prompt S/R", str, _apply_prompt_sr, format_value=_value_only),
    AxisOption("Prompt order", PERMUTATIONS, _apply_order, format_value=_joined),
    _sampler_axis("txt2img"),
    AxisOption(
        "Hires sampler",
        str,
        _field("hr_sampler_name"),
        confirm=_confirm_samplers,
        choices=lambda app: [s.name for s in SAMPLERS],
        tab="txt2img",
    ),
    _sampler_axis("img2img"),
    AxisOption(
        "Checkpoint name",
        str,
        _setting("sd_model_checkpoint"),
        format_value=_basename,
        confirm=_confirm_checkpoints,
        cost=1.0,
        choices=lambda app: sorted(app.checkpoints.titles(), key=str.casefold),
    ),
    AxisOption("Negative Guidance minimum sigma", float, _field("s_min_uncond")),
    AxisOption("Sigma Churn", float, _field("s_churn")),
    AxisOption("Sigma min", float, _field("s_tmin")),
    AxisOption("Sigma max", float, _field("s_tmax")),
    AxisOption("Sigma noise", float, _field("s_noise")),
    AxisOption(
        "Schedule type",
        str,
        _field("scheduler"),
        confirm=_confirm_schedules,
        choices=lambda app: [t.label for t in SCHEDULE_TYPES],
    ),
    AxisOption("Schedule min sigma", float, _setting("sigma_min")),
    AxisOption("Schedule max sigma", float, _setting("sigma_max")),
    AxisOption("Schedule rho", float, _setting("rho")),
    AxisOption("Beta schedule alpha", float, _setting("beta_dist_alpha")),
    AxisOption("Beta schedule beta", float, _setting("beta_dist_beta")),
    AxisOption("Eta", float, _field("eta")),
    AxisOption("Clip skip", int, _setting("CLIP_stop_at_last_layers"), confirm=_confirm_clip_skip),
    AxisOption("Denoising", float, _field("denoising_strength")),  # txt2img: the hires pass's
    _in_img2img("Initial noise multiplier", "initial_noise_multiplier"),
    AxisOption("Extra noise", float, _setting("img2img_extra_noise")),
    AxisOption(
        "Hires upscaler",
        str,
        _field("hr_upscaler"),
        confirm=_confirm_upscalers,
        choices=lambda app: [*app.upscalers.latent_modes(), *app.upscalers.names()],
        tab="txt2img",
    ),
    AxisOption("Cond. Image Mask Weight", float, _setting("inpainting_mask_weight"), tab="img2img"),
    AxisOption(
        "VAE", str, _setting("sd_vae"), confirm=_confirm_vaes, cost=0.7, choices=lambda app: app.vaes.names()
    ),
    AxisOption("Styles", str, _apply_styles, confirm=_confirm_styles, choices=lambda app: app.styles.names()),
    AxisOption("UniPC Order", int, _apply_unipc_order, cost=0.5),
    AxisOption(
        "Face restore",
        str,
        _apply_face_restore,
        format_value=_value_only,
        choices=lambda app: ["True", "False", "CodeFormer", "GFPGAN"],
    ),
    AxisOption("Token merging ratio", float, _setting("token_merging_ratio")),
    AxisOption("Token merging ratio high-res", float, _setting("token_merging_ratio_hr")),
    _switch_setting("Always discard next-to-last sigma", "always_discard_next_to_last_sigma"),
    _switch_setting("SGM noise multiplier", "sgm_noise_multiplier"),
    AxisOption(
        "Refiner checkpoint",
        str,
        _field("refiner_checkpoint"),
        format_value=_basename,
        confirm=_confirm_refiners,
        cost=1.0,
        choices=lambda app: ["None", *sorted(app.checkpoints.titles(), key=str.casefold)],
    ),
    AxisOption("Refiner switch at", float, _field("refiner_switch_at")),
    AxisOption(
        "RNG source",
        str,
        _setting("randn_source"),
        confirm=_confirm_rng,
        choices=lambda app: list(RNG_SOURCES),
    ),
    AxisOption(
        "FP8 mode",
        str,
        _setting("fp8_storage"),
        confirm=_confirm_fp8,
        cost=0.9,
        choices=lambda app: list(FP8_MODES),
    ),
    AxisOption("Size", str, _apply_size, confirm=_confirm_sizes),
    # sd-webui-controlnet appends its axes after A1111's
    *(
        AxisOption(a.label, a.type, a.apply, confirm=a.confirm, choices=a.choices, cost=a.cost)
        for a in CONTROLNET_AXES
    ),
)
TXT2IMG_AXES = tuple(axis for axis in AXES if axis.listed_on(False))
IMG2IMG_AXES = tuple(axis for axis in AXES if axis.listed_on(True))


AxisList = Sequence[Any]  # AxisOption, or A1111-style options extensions appended (xyz_extension_axes)


def _as_axis(option: Any) -> AxisOption:
    """Sumi's AxisOption for an entry of the built-in script's `axis_options` list."""
    return option if isinstance(option, AxisOption) else sumi_axis(option, AxisOption)


def axes_for(is_img2img: bool, options: AxisList | None = None) -> tuple[AxisOption, ...]:
    """The tab's axis list: its index is the tab's `x_type` (A1111's `current_axis_options`). `options` is
    the built-in script's `axis_options` (Sumi's axes, then those extensions appended); None: Sumi's."""
    if options is None:
        return IMG2IMG_AXES if is_img2img else TXT2IMG_AXES
    return tuple(axis for axis in map(_as_axis, options) if axis.listed_on(is_img2img))


def axis_index(label: str, is_img2img: bool = False, options: AxisList | None = None) -> int | None:
    """The tab's index of the axis called `label` (any case), None for none."""
    wanted = str(label).strip().lower()
    axes = axes_for(is_img2img, options)
    return next((i for i, axis in enumerate(axes) if axis.label.lower() == wanted), None)


AXIS_INDEX = {axis.label.lower(): i for i, axis in enumerate(TXT2IMG_AXES)}


def find_axis(
    kind: Any, name: str = "X", is_img2img: bool = False, options: AxisList | None = None
) -> AxisOption:
    """The tab's axis for an A1111 index (or its label); a clear error for unknown or unsupported ones."""
    axes = axes_for(is_img2img, options)
    index = axis_index(kind, is_img2img, options) if isinstance(kind, str) else None
    if index is None:
        try:
            index = int(kind)
        except (TypeError, ValueError):
            raise InvalidRequestError(f"X/Y/Z plot: unknown {name} type {kind!r}") from None
    if not 0 <= index < len(axes):
        raise InvalidRequestError(f"X/Y/Z plot: {name} type {index} is out of range (0..{len(axes) - 1})")
    axis = axes[index]
    if not axis.supported_on(is_img2img):
        where = " in txt2img" if axis.supported else ""
        raise InvalidRequestError(
            f"X/Y/Z plot: the {name} axis {axis.label!r} is not supported by Sumi{where}"
        )
    return axis


# --- a plot --------------------------------------------------------------------------------------------


@dataclass
class PlotAxis:
    name: str  # X, Y or Z
    option: AxisOption
    values: list[Any]
    text: str  # as written in the infotext's "X Values"

    @property
    def is_nothing(self) -> bool:
        return self.option.label == "Nothing"

    def legends(self) -> list[list[GridAnnotation]]:
        return [[GridAnnotation(self.option.legend(value))] for value in self.values]

    def params(self, fixed_seeds: bool) -> dict[str, Any]:
        if self.is_nothing:
            return {}
        params = {f"{self.name} Type": self.option.label, f"{self.name} Values": self.text}
        if self.option.label in SEED_AXES and fixed_seeds:
            params[f"Fixed {self.name} Values"] = ", ".join(str(v) for v in self.values)
        return params


def build_axis(
    app: Any,
    p: Any,
    name: str,
    kind: Any,
    text: str,
    dropdown: Any,
    csv_mode: bool,
    keep_random: bool,
    is_img2img: bool = False,
    options: AxisList | None = None,
) -> PlotAxis:
    option = find_axis(kind, name, is_img2img, options)
    if option.label == "Nothing":
        return PlotAxis(name, option, [0], "")
    if isinstance(dropdown, str):
        dropdown = split_csv(dropdown)
    use_dropdown = option.choices is not None and not csv_mode and bool(dropdown)
    items = [str(v) for v in dropdown] if use_dropdown else split_csv(str(text or ""))
    if option.type is not str:
        items = [item for item in items if item]
    shown = to_csv(items) if use_dropdown else str(text or "")
    try:
        if not items:
            raise InvalidRequestError("no values given")
        values = expand_values(option.type, items)
        if len(values) > MAX_AXIS_VALUES:
            raise InvalidRequestError(f"{len(values)} values; at most {MAX_AXIS_VALUES} are allowed")
        if option.confirm is not None:
            values = option.confirm(app, p, values)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"X/Y/Z plot, {name} axis ({option.label}): {exc}") from None
    if option.label in SEED_AXES and not keep_random:
        values = [random_seed() if value == -1 else value for value in values]
    return PlotAxis(name, option, values, shown)


@dataclass
class Cell:
    index: tuple[int, int, int]  # (ix, iy, iz)
    job: StableDiffusionProcessing
    image: Image.Image | None = None
    infotext: str = ""


@dataclass
class Plot:
    axes: tuple[PlotAxis, PlotAxis, PlotAxis]
    cells: list[Cell] = field(default_factory=list)  # in the order they are generated
    _by_index: dict[tuple[int, int, int], Cell] = field(default_factory=dict, init=False, repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.axes[0].values), len(self.axes[1].values), len(self.axes[2].values)

    def cell(self, ix: int, iy: int, iz: int) -> Cell:
        return self._by_index[(ix, iy, iz)]

    def add(self, cell: Cell) -> None:
        self.cells.append(cell)
        self._by_index[cell.index] = cell


def processing_order(axes: Sequence[PlotAxis]) -> list[int]:
    """Axis positions (0=X, 1=Y, 2=Z) from the outermost loop to the innermost: the costliest axis
    (checkpoint, VAE) outermost so its value changes least often; otherwise Z, Y, X as A1111."""
    return sorted((2, 1, 0), key=lambda i: -axes[i].option.cost)


def plan(
    p: StableDiffusionProcessing, axes: tuple[PlotAxis, PlotAxis, PlotAxis], vary: Sequence[bool]
) -> Plot:
    """Every cell's job, in the order they are to be generated."""
    result = Plot(axes)
    order = processing_order(axes)
    sizes = [len(axis.values) for axis in axes]
    for combination in itertools.product(*(range(sizes[i]) for i in order)):
        index = [0, 0, 0]
        for position, value in zip(order, combination, strict=True):
            index[position] = value
        result.add(Cell((index[0], index[1], index[2]), _cell_job(p, axes, index, vary, sizes)))
    return result


def _cell_job(
    p: Any, axes: Sequence[PlotAxis], index: list[int], vary: Sequence[bool], sizes: list[int]
) -> Any:
    job = job_copy(p, do_not_save_grid=True)
    for axis, i in zip(axes, index, strict=True):
        apply = axis.option.apply
        assert apply is not None  # find_axis refuses unsupported axes
        apply(job, axis.values[i], axis.values)
    offset, stride = 0, 1
    for i, size, varies in zip(index, sizes, vary, strict=True):
        if varies:
            offset, stride = offset + i * stride, stride * size
    if offset and int(job.seed) != -1:
        job.seed = int(job.seed) + offset
    return job


# --- running ----------------------------------------------------------------------------------------


@dataclass
class AxisSpec:
    """One axis as the script's arguments give it: A1111 index (or label), text, dropdown values."""

    kind: Any = 0
    text: str = ""
    dropdown: Any = None


@dataclass
class PlotSettings:
    x: AxisSpec = field(default_factory=lambda: AxisSpec(1))
    y: AxisSpec = field(default_factory=AxisSpec)
    z: AxisSpec = field(default_factory=AxisSpec)
    draw_legend: bool = True
    include_lone_images: bool = False
    include_sub_grids: bool = False
    no_fixed_seeds: bool = False
    vary_seeds: tuple[bool, bool, bool] = (False, False, False)
    margin_size: int = 0
    csv_mode: bool = False
    is_img2img: bool = False  # which tab's axis list the types index
    axis_options: AxisList | None = None  # the built-in script's list, with extensions' axes; None: Sumi's


def run_plot(app: Any, p: StableDiffusionProcessing, settings: PlotSettings) -> Processed:
    """Check everything, generate the cells (inside the job worker), and assemble the grids."""
    s = settings
    if not s.no_fixed_seeds:
        fix_seed(p)
    if not app.options.return_grid:
        p.batch_size = 1
    specs = (("X", s.x), ("Y", s.y), ("Z", s.z))
    x, y, z = (
        build_axis(
            app,
            p,
            name,
            a.kind,
            a.text,
            a.dropdown,
            s.csv_mode,
            s.no_fixed_seeds,
            s.is_img2img,
            s.axis_options,
        )
        for name, a in specs
    )
    axes = (x, y, z)
    check_grid_size(math.prod(len(a.values) for a in axes), 64, 64, app.options, TITLE)
    grid = plan(p, axes, s.vary_seeds)
    width = max(cell.job.width for cell in grid.cells)
    height = max(cell.job.height for cell in grid.cells)
    check_grid_size(len(grid.cells), width, height, app.options, TITLE)
    validate_jobs(app, [cell.job for cell in grid.cells])
    collected = Collected()
    try:
        _generate(app, grid, collected)
    finally:
        _reload_settings(app, axes, collected)
    return _assemble(app, p, grid, collected, s)


def _generate(app: Any, grid: Plot, collected: Collected) -> None:
    """Generate the cells in order; stop at an interrupt; a cell that fails is named and left blank."""
    failures: list[EngineError] = []
    for cell in grid.cells:
        try:
            processed = app.runner.process(cell.job)
        except Interrupted:
            break
        except EngineError as exc:  # e.g. a checkpoint that does not load: the other cells still run
            failures.append(exc)
            collected.warn([f"X/Y/Z plot: cell {_cell_name(grid, cell)} failed: {exc}"])
            continue
        if processed.images:
            cell.image, cell.infotext = processed.images[0], processed.infotexts[0]
            cell.job = processed.p
        collected.warn(processed.warnings)
        if app.state.interrupted:  # read after a cell: an earlier job's interrupt stays set until then
            break
    if failures and not any(cell.image is not None for cell in grid.cells):
        raise failures[0]


def _cell_name(grid: Plot, cell: Cell) -> str:
    parts = [axis.option.legend(axis.values[i]) for axis, i in zip(grid.axes, cell.index, strict=True)]
    return ", ".join(part for part in parts if part) or "1"


def _reload_settings(app: Any, axes: Sequence[PlotAxis], collected: Collected) -> None:
    """After checkpoint or VAE axes, load the model the (restored) settings select again, as A1111."""
    if not any(axis.option.label in ("Checkpoint name", "VAE") for axis in axes):
        return
    try:
        app.models.get()
    except EngineError as exc:
        collected.warn([f"X/Y/Z plot: the selected checkpoint could not be loaded again: {exc}"])


def _assemble(app: Any, p: Any, grid: Plot, collected: Collected, options: PlotSettings) -> Processed:
    """The Z grid, the X×Y grids and the cells, with the grids' infotexts and files."""
    nx, ny, nz = grid.shape
    style = grid_style(app)
    x, y, z = grid.axes
    sub_grids = []
    for iz in range(nz):
        cells = [grid.cell(ix, iy, iz) for iy in range(ny) for ix in range(nx)]
        size = _cell_size([cell.image for cell in cells], (p.width, p.height))
        for cell in cells:
            collected.add_image(cell.image or Image.new("RGB", size), cell.infotext, cell.job)
        sub = image_grid(collected.images[-len(cells) :], rows=ny)
        if options.draw_legend:
            sub = draw_grid_annotations(
                sub, *size, x.legends(), y.legends(), options.margin_size, style=style
            )
        sub_grids.append((sub, with_params(_first_infotext(grid, iz), _grid_params(grid, options, z=False))))
    sub_size = (max(g.width for g, _ in sub_grids), max(g.height for g, _ in sub_grids))
    z_grid = image_grid([g for g, _ in sub_grids], rows=1)
    if options.draw_legend:
        z_grid = draw_grid_annotations(z_grid, *sub_size, z.legends(), [[GridAnnotation()]], style=style)
    main = (z_grid, with_params(_first_infotext(grid, 0), _grid_params(grid, options, z=True)))
    save_grid(app, p, main[0], main[1], "xyz_grid", collected.warnings)
    if options.include_sub_grids and nz > 1:
        for sub, info in sub_grids:
            save_grid(app, p, sub, info, "xyz_grid", collected.warnings)
    grids = [main, *sub_grids] if options.include_sub_grids else [main]
    return collected.processed(p, grids, include_images=options.include_lone_images)


def _cell_size(images: Sequence[Image.Image | None], default: tuple[int, int]) -> tuple[int, int]:
    found = [image for image in images if image is not None]
    return (max(i.width for i in found), max(i.height for i in found)) if found else default


def _first_infotext(grid: Plot, iz: int) -> str:
    nx, ny, _ = grid.shape
    first = grid.cell(0, 0, iz)
    if first.infotext:
        return first.infotext
    others = (grid.cell(ix, iy, iz).infotext for iy in range(ny) for ix in range(nx))
    return next((info for info in others if info), "")


def _grid_params(grid: Plot, options: PlotSettings, z: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"Script": TITLE}
    for axis in grid.axes[:3] if z else grid.axes[:2]:
        params.update(axis.params(not options.no_fixed_seeds))
    return params
