"""Prompts from file or textbox (A1111's built-in script): one job per non-empty line.

A plain line is a prompt. A line that starts with `--` sets the job's fields shell-style, as A1111:
`--prompt "a cat" --negative_prompt "blurry" --steps 20 --seed 5 --sampler_name "Euler a"`. Unlike
A1111, which quietly uses such a line as a prompt when it cannot parse it, an unknown tag, a missing
value or a value of the wrong type is a clear error naming the line, before any image is made.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Callable
from typing import Any

import modules.scripts as scripts
from modules import shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.sampling.samplers import SAMPLERS, find_sampler
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing
from modules.sumi.services.jobs.script_jobs import (
    Collected,
    fix_seed,
    generated,
    job_copy,
    run_jobs,
    validate_jobs,
)

TITLE = "Prompts from file or textbox"
PROMPT_TAGS = ("prompt", "negative_prompt")  # their values run up to the next --tag, as in A1111


def _text(value: str) -> str:
    return value


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"expects a whole number, got {value!r}") from None


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"expects a number, got {value!r}") from None


def _bool(value: str) -> bool:
    if value.lower() not in ("true", "false"):
        raise ValueError(f"expects true or false, got {value!r}")
    return value.lower() == "true"


def _styles(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _sampler_name(value: str) -> str:
    return find_sampler(value)[0].name


def _sampler_index(value: str) -> str:
    index = _int(value)
    if not 0 <= index < len(SAMPLERS):
        raise ValueError(f"expects a sampler index from 0 to {len(SAMPLERS) - 1}, got {index}")
    return SAMPLERS[index].name


TAGS: dict[str, tuple[str, Callable[[str], Any]]] = {  # tag: (field of p, conversion)
    "prompt": ("prompt", _text),
    "negative_prompt": ("negative_prompt", _text),
    "styles": ("styles", _styles),
    "seed": ("seed", _int),
    "subseed": ("subseed", _int),
    "subseed_strength": ("subseed_strength", _float),
    "seed_resize_from_h": ("seed_resize_from_h", _int),
    "seed_resize_from_w": ("seed_resize_from_w", _int),
    "sampler_index": ("sampler_name", _sampler_index),
    "sampler_name": ("sampler_name", _sampler_name),
    "batch_size": ("batch_size", _int),
    "n_iter": ("n_iter", _int),
    "steps": ("steps", _int),
    "cfg_scale": ("cfg_scale", _float),
    "width": ("width", _int),
    "height": ("height", _int),
    "restore_faces": ("restore_faces", _bool),
    "tiling": ("tiling", _bool),
    "do_not_save_samples": ("do_not_save_samples", _bool),
    "do_not_save_grid": ("do_not_save_grid", _bool),
    "outpath_samples": ("outpath_samples", _text),
    "outpath_grids": ("outpath_grids", _text),
    "prompt_for_display": ("prompt_for_display", _text),
    "sd_model": ("sd_model", _text),  # checked against the checkpoints when the jobs are made
}


def parse_line(line: str) -> dict[str, Any]:
    """The fields a line sets: `{"prompt": line}` for a plain line, else its `--tag value` pairs."""
    if not line.startswith("--"):
        return {"prompt": line}
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise ValueError(f"cannot split the line ({exc})") from None
    fields: dict[str, Any] = {}
    pos = 0
    while pos < len(words):
        word = words[pos]
        tag = word[2:]
        if not word.startswith("--") or tag not in TAGS:
            known = ", ".join(f"--{t}" for t in TAGS)
            raise ValueError(f"unknown option {word!r}; known options: {known}")
        values = (
            words[pos + 1 : _next_tag(words, pos + 1)] if tag in PROMPT_TAGS else words[pos + 1 : pos + 2]
        )
        if not values:
            raise ValueError(f"{word} needs a value")
        name, convert = TAGS[tag]
        try:
            fields[name] = convert(" ".join(values))
        except (ValueError, InvalidRequestError) as exc:
            raise ValueError(f"{word} {exc}") from None
        pos += 1 + len(values)
    return fields


def _next_tag(words: list[str], start: int) -> int:
    return next((i for i in range(start, len(words)) if words[i].startswith("--")), len(words))


def read_lines(prompt_txt: Any, file: Any = None) -> list[str]:
    """The non-empty lines of the textbox, or of the uploaded file when the textbox is empty."""
    text = prompt_txt if isinstance(prompt_txt, str) else ""
    if not text.strip() and file:
        text = _file_text(file)
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


def _file_text(file: Any) -> str:
    """An upload as gradio gives it (bytes) or as an API client sends it (base64 text, or a data URL).
    Paths are not read: a request must not make the server read its own files."""
    if isinstance(file, bytes):
        return file.decode("utf-8", errors="ignore")
    if not isinstance(file, str):
        raise InvalidRequestError(f"{TITLE}: the file must be sent as base64 text")
    try:
        return base64.b64decode(file.split(",", 1)[-1], validate=True).decode("utf-8", errors="ignore")
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{TITLE}: the file is not base64 text") from None


def make_job(app: Any, p: StableDiffusionProcessing, fields: dict[str, Any], position: str) -> Any:
    """A copy of `p` with a line's fields; its prompts go at the start or the end of the main ones."""
    job = job_copy(p, do_not_save_grid=True)
    for name, value in fields.items():
        if name == "sd_model":
            info = app.checkpoints.match(value)
            if info is None:
                raise InvalidRequestError(f"Checkpoint not found: {value!r}")
            job.override_settings["sd_model_checkpoint"] = info.title
        else:
            setattr(job, name, value)
    for name in PROMPT_TAGS:
        line_text, main_text = fields.get(name), getattr(p, name)
        if line_text and isinstance(main_text, str) and main_text:
            joined = (line_text, main_text) if position == "start" else (main_text, line_text)
            setattr(job, name, " ".join(joined))
    return job


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        from gradio.context import get_blocks_context

        iterate = gr.Checkbox(
            False, label="Iterate seed every line", elem_id=self.elem_id("checkbox_iterate")
        )
        same_seed = gr.Checkbox(
            False, label="Use same random seed for all lines", elem_id=self.elem_id("checkbox_iterate_batch")
        )
        position = gr.Radio(
            ["start", "end"],
            value="start",
            label="Insert prompts at the",
            elem_id=self.elem_id("prompt_position"),
        )
        prompt_txt = gr.Textbox(label="List of prompt inputs", lines=2, elem_id=self.elem_id("prompt_txt"))
        file = gr.File(label="Upload prompt inputs", type="binary", elem_id=self.elem_id("file"))
        if get_blocks_context() is not None:
            file.change(
                lambda data: "\n".join(read_lines("", data)) if data else gr.update(),
                [file],
                [prompt_txt],
                show_progress="hidden",
            )
        return [iterate, same_seed, position, prompt_txt, file]

    def run(
        self,
        p: StableDiffusionProcessing,
        checkbox_iterate: bool = False,
        checkbox_iterate_batch: bool = False,
        prompt_position: str = "start",
        prompt_txt: str = "",
        file: Any = None,
    ) -> Processed:
        app = shared.app()
        if prompt_position not in ("start", "end"):
            raise InvalidRequestError(
                f"{TITLE}: prompt position must be start or end, got {prompt_position!r}"
            )
        lines = read_lines(prompt_txt, file)
        if not lines:
            raise InvalidRequestError(f"{TITLE}: the list of prompts is empty")
        parsed = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append(parse_line(line))
            except ValueError as exc:
                raise InvalidRequestError(f"{TITLE}, line {number} ({line!r}): {exc}") from None
        if checkbox_iterate or checkbox_iterate_batch:
            fix_seed(p)
        jobs = []
        for number, fields in enumerate(parsed):
            job = make_job(app, p, fields, prompt_position)
            if checkbox_iterate and "seed" not in fields:  # A1111: p.seed grows by each job's image count
                job.seed = int(p.seed) + number * p.batch_size * p.n_iter
            jobs.append(job)
        validate_jobs(app, jobs)
        collected = Collected()
        for processed in run_jobs(app, jobs):
            collected.add(processed, *generated(processed))
        return collected.processed(p)
