"""A1111's `images.FilenameGenerator`: file-name patterns such as "[seed]-[prompt_spaces]".

Every token of A1111 1.10's table is known (`FilenameGenerator.replacements`, which extensions may
extend): `[seed]`, `[seed_first]`, `[seed_last]`, `[steps]`, `[cfg]`, `[width]`, `[height]`,
`[styles]`, `[sampler]`, `[sampler_scheduler]`, `[scheduler]`, `[model_hash]`, `[model_name]`,
`[date]`, `[datetime<Format><Time zone>]`, `[job_timestamp]`, `[prompt_hash<N>]`,
`[negative_prompt_hash<N>]`, `[full_prompt_hash<N>]`, `[prompt]`, `[prompt_no_styles]`,
`[prompt_spaces]`, `[prompt_words]`, `[batch_number]`, `[batch_size]`, `[generation_number]`,
`[hasprompt<word|default>...]`, `[clip_skip]`, `[denoising]`, `[user]`, `[vae_filename]`, `[none]`,
`[image_hash<N>]`, `[basename]`. As in A1111, a token that has nothing to say in this job
(`[seed_last]` with batch size 1, `[batch_number]` with batch size 1 or in a zip name,
`[denoising]` without denoising, ...) is dropped together with the text just before it, and an
unknown token, or one whose value is missing, stays as written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from modules.sumi.services.images.saving import (
    RE_PATTERN,
    prompt_words,
    sanitize_filename_part,
    sanitize_path_text,
)

# A1111's marker: the token is dropped together with the text in front of it ("-[seed_last]" -> "").
NOTHING_AND_SKIP_PREVIOUS_TEXT = object()
DEFAULT_TIME_FORMAT = "%Y%m%d%H%M%S"
RE_PATTERN_ARG = re.compile(r"(.*)<([^>]*)>$")


def _part(value: Any) -> Any:
    return None if value is None else sanitize_filename_part(str(value), replace_spaces=False)


def _batch_one(p: Any) -> bool:
    return int(getattr(p, "batch_size", 1) or 1) == 1


def _seed_first(g: FilenameGenerator) -> Any:
    return g.seed if _batch_one(g.p) else g.p.all_seeds[0]


def _seed_last(g: FilenameGenerator) -> Any:
    return NOTHING_AND_SKIP_PREVIOUS_TEXT if _batch_one(g.p) else g.p.all_seeds[-1]


def _batch_number(g: FilenameGenerator) -> Any:
    if _batch_one(g.p) or g.zip:
        return NOTHING_AND_SKIP_PREVIOUS_TEXT
    return int(getattr(g.p, "batch_index", 0)) + 1


def _generation_number(g: FilenameGenerator) -> Any:
    p = g.p
    if (int(getattr(p, "n_iter", 1) or 1) == 1 and _batch_one(p)) or g.zip:
        return NOTHING_AND_SKIP_PREVIOUS_TEXT
    return int(getattr(p, "iteration", 0)) * int(p.batch_size) + int(getattr(p, "batch_index", 0)) + 1


def _scheduler(p: Any) -> str:
    return str(getattr(p, "scheduler", None) or "Automatic").capitalize()


def _sampler_scheduler(g: FilenameGenerator, with_sampler: bool) -> Any:
    if g.p is None or not hasattr(g.p, "sampler_name"):
        return NOTHING_AND_SKIP_PREVIOUS_TEXT
    text = f"{g.p.sampler_name} {_scheduler(g.p)}" if with_sampler else _scheduler(g.p)
    return _part(text)


def _string_hash(text: str, *args: str) -> str:
    length = int(args[0]) if args and args[0] != "" else 8
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _image_hash(g: FilenameGenerator, *args: str) -> Any:
    if g.image is None:
        return None
    length = int(args[0]) if args and args[0] != "" else None
    return hashlib.sha256(g.image.tobytes()).hexdigest()[:length]


def _datetime(g: FilenameGenerator, *args: str) -> str:
    """`[datetime<%Y-%m-%d_%H%M><Europe/Paris>]`: now, in that format and time zone (a bad time zone
    means local time; a bad format A1111's default)."""
    zone = None
    if len(args) > 1 and args[1]:
        try:
            zone = ZoneInfo(args[1])
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    now = dt.datetime.now(zone)
    fmt = args[0] if args and args[0] != "" else DEFAULT_TIME_FORMAT
    try:
        text = now.strftime(fmt)
    except (ValueError, TypeError):
        text = now.strftime(DEFAULT_TIME_FORMAT)
    return sanitize_filename_part(text, replace_spaces=False)


def _hasprompt(g: FilenameGenerator, *args: str) -> Any:
    """`[hasprompt<cat|nocat><dog>]`: each word found in the prompt, else its default (if any)."""
    if g.p is None or not isinstance(g.prompt, str):
        return None
    lower, out = g.prompt.lower(), ""
    for arg in args:
        if arg:
            expected, _, default = arg.partition("|")
            out += expected.lower() if expected.lower() in lower else default
    return sanitize_filename_part(out)


def _prompt_no_styles(g: FilenameGenerator) -> Any:
    """The prompt without the text its styles added (`p.style_prompts`: name -> style prompt)."""
    prompt = g.prompt if isinstance(g.prompt, str) else ""
    styles = getattr(g.p, "style_prompts", None) or {}
    for name in getattr(g.p, "styles", None) or []:
        for part in str(styles.get(name) or "").split("{prompt}"):
            if part.strip(" ,"):
                prompt = prompt.replace(part.strip(" ,"), "")
    prompt = re.sub(r"(\s*,\s*){2,}", ", ", prompt).strip(" ,")
    return sanitize_filename_part(prompt, replace_spaces=False)


def _vae_filename(g: FilenameGenerator) -> Any:
    """The loaded VAE file's name without extension (A1111: "NoneType" when none is loaded)."""
    path = getattr(g.p, "sd_vae_file", None) or getattr(g.p, "sd_vae_name", None)
    if not path or path in ("None", "Automatic"):
        return "NoneType"
    name = os.path.basename(str(path))
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "" else parts[0]


Replacement = Callable[..., Any]


class FilenameGenerator:
    """Expands A1111's file-name patterns for job `p`, image `image` and seed/prompt."""

    replacements: dict[str, Replacement] = {
        "basename": lambda g: g.basename or "img",
        "seed": lambda g: g.seed if g.seed is not None else "",
        "seed_first": _seed_first,
        "seed_last": _seed_last,
        "steps": lambda g: g.p and g.p.steps,
        "cfg": lambda g: g.p and g.p.cfg_scale,
        "width": lambda g: getattr(g.image, "width", None) or (g.p and g.p.width),
        "height": lambda g: getattr(g.image, "height", None) or (g.p and g.p.height),
        "styles": lambda g: g.p and _part(", ".join(s for s in g.p.styles or [] if s != "None") or "None"),
        "sampler": lambda g: g.p and _part(g.p.sampler_name),
        "sampler_scheduler": lambda g: _sampler_scheduler(g, True),
        "scheduler": lambda g: _sampler_scheduler(g, False),
        "model_hash": lambda g: g.p and g.p.sd_model_hash,
        "model_name": lambda g: g.p and _part(g.p.sd_model_name),
        "date": lambda g: dt.datetime.now().strftime("%Y-%m-%d"),
        "datetime": _datetime,
        "job_timestamp": lambda g: g.p and g.p.job_timestamp,
        "prompt_hash": lambda g, *a: _string_hash(g.prompt or "", *a),
        "negative_prompt_hash": lambda g, *a: _string_hash(g.p.negative_prompt or "", *a),
        "full_prompt_hash": lambda g, *a: _string_hash(f"{g.p.prompt} {g.p.negative_prompt}", *a),
        "prompt": lambda g: sanitize_filename_part(g.prompt or ""),
        "prompt_no_styles": _prompt_no_styles,
        "prompt_spaces": lambda g: sanitize_filename_part(g.prompt or "", replace_spaces=False),
        "prompt_words": lambda g: prompt_words(g.prompt or ""),
        "batch_number": _batch_number,
        "batch_size": lambda g: g.p.batch_size,
        "generation_number": _generation_number,
        "hasprompt": _hasprompt,
        "clip_skip": lambda g: g.p and g.p.clip_skip,
        "denoising": lambda g: (g.p.denoising_strength if g.p and g.p.denoising_strength else NOTHING_AND_SKIP_PREVIOUS_TEXT),
        "user": lambda g: g.p and getattr(g.p, "user", None),
        "vae_filename": _vae_filename,
        "none": lambda g: "",
        "image_hash": _image_hash,
    }  # fmt: skip

    def __init__(
        self, p: Any, seed: Any, prompt: Any, image: Any = None, zip: bool = False, basename: str = ""
    ):  # noqa: A002
        self.p, self.seed, self.image, self.zip, self.basename = p, seed, image, zip, basename
        self.prompt = prompt if isinstance(prompt, str) else ""

    def apply(self, x: str) -> str:
        out = []
        for text, token in RE_PATTERN.findall(x):
            if not token:
                out.append(text)
                continue
            name, args = token, []
            while (m := RE_PATTERN_ARG.match(name)) is not None:
                name, arg = m.groups()
                args.insert(0, arg)
            fun = self.replacements.get(name.lower())
            value = None
            if fun is not None:
                try:
                    value = fun(self, *args)
                except (AttributeError, IndexError, KeyError, TypeError, ValueError):
                    value = None  # A1111 keeps the token as written when its value fails
            if value is NOTHING_AND_SKIP_PREVIOUS_TEXT:
                continue
            out.append(text + (str(value) if value is not None else f"[{token}]"))
        return sanitize_path_text("".join(out))


class _ImageOfJob:
    """Job `p` as seen while image `index` of it is saved: A1111's `batch_index` and `iteration`."""

    def __init__(self, p: Any, index: int) -> None:
        size = max(1, int(getattr(p, "batch_size", 1) or 1))
        self._p, self.batch_index, self.iteration = p, index % size, index // size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._p, name)


def image_file_decoration(p: Any, index: int, seed: Any, prompt: str, image: Any, pattern: str) -> str:
    """The `samples_filename_pattern` part of the file name of image `index` of job `p`."""
    return FilenameGenerator(_ImageOfJob(p, index), seed, prompt, image).apply(pattern)
