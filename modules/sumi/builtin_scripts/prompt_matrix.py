"""Prompt matrix (A1111's built-in script): every combination of the `|` parts of a prompt, in a grid.

`a cat|red|blue` makes `a cat`, `a cat, red`, `a cat, blue`, `a cat, red, blue`: part 0 is always
there, combination c uses variable part k when bit k-1 of c is set. All images share one seed (or get
seed + i with "Random seeds"); the grid comes first, with every variable part written over the columns
(first half) or beside the rows (second half), dark where used and grey where not.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import modules.scripts as scripts
from modules import shared
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.grids import draw_prompt_matrix
from modules.sumi.services.images.saving import image_grid
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing
from modules.sumi.services.jobs.script_jobs import (
    Collected,
    check_grid_size,
    fix_seed,
    generated,
    grid_style,
    job_copy,
    run_jobs,
    save_grid,
    validate_jobs,
)

TITLE = "Prompt matrix"
DELIMITERS = {"comma": ", ", "space": " "}


def matrix_prompts(prompt: str, put_at_start: bool = False, delimiter: str = ", ") -> list[str]:
    """Every combination of the variable parts of `prompt` (split naively on `|`), in A1111's order."""
    fixed, *variable = prompt.split("|")
    prompts = []
    for combination in range(1 << len(variable)):
        selected = [text.strip().strip(",") for k, text in enumerate(variable) if combination & (1 << k)]
        parts = [*selected, fixed] if put_at_start else [fixed, *selected]
        prompts.append(delimiter.join(parts))
    return prompts


def batches(count: int, batch_size: int, max_batches: int) -> list[tuple[int, int, int]]:
    """(first image, batch size, batch count) of the jobs that make exactly `count` images: full
    batches first (at most `max_batches` per job), then one smaller batch for the rest, as A1111's
    last batch is."""
    jobs = []
    full = count // batch_size
    start = 0
    while full > 0:
        n = min(full, max_batches)
        jobs.append((start, batch_size, n))
        start, full = start + n * batch_size, full - n
    if start < count:
        jobs.append((start, count - start, 1))
    return jobs


def _jobs(p: Any, target: str, prompts: list[str], seeds: list[int], max_batches: int) -> list[Any]:
    """Copies of `p` that together make one image per prompt, with `prompts` set as `target`."""
    jobs = []
    for start, size, n in batches(len(prompts), max(1, int(p.batch_size)), max_batches):
        window = slice(start, start + size * n)
        job = job_copy(p, batch_size=size, n_iter=n, do_not_save_grid=True, seed=seeds[window])
        setattr(job, target, prompts[window])
        jobs.append(job)
    return jobs


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr

        row = gr.Row if _in_blocks() else contextlib.nullcontext
        with row():
            put_at_start = gr.Checkbox(
                False, label="Set at prompt start", elem_id=self.elem_id("put_at_start")
            )
            different_seeds = gr.Checkbox(
                False, label="Random seeds", elem_id=self.elem_id("different_seeds")
            )
            prompt_type = gr.Radio(
                ["positive", "negative"],
                value="positive",
                label="Prompt type",
                elem_id=self.elem_id("prompt_type"),
            )
            delimiter = gr.Radio(
                ["comma", "space"],
                value="comma",
                label="Joining char",
                elem_id=self.elem_id("variations_delimiter"),
            )
            margin_size = gr.Slider(
                0, 500, value=0, step=2, label="Grid margins (px)", elem_id=self.elem_id("margin_size")
            )
        return [put_at_start, different_seeds, prompt_type, delimiter, margin_size]

    def run(
        self,
        p: StableDiffusionProcessing,
        put_at_start: bool = False,
        different_seeds: bool = False,
        prompt_type: str = "positive",
        variations_delimiter: str = "comma",
        margin_size: float = 0,
    ) -> Processed:
        app = shared.app()
        if prompt_type not in ("positive", "negative"):
            raise InvalidRequestError(
                f"Prompt matrix: prompt type must be positive or negative, got {prompt_type!r}"
            )
        if variations_delimiter not in DELIMITERS:
            raise InvalidRequestError(
                f"Prompt matrix: joining char must be comma or space, got {variations_delimiter!r}"
            )
        source = p.prompt if prompt_type == "positive" else p.negative_prompt
        original = source[0] if isinstance(source, list) else (source or "")
        parts = original.split("|")
        check_grid_size(1 << (len(parts) - 1), p.width, p.height, app.options, TITLE)  # before 2^n prompts
        prompts = matrix_prompts(original, bool(put_at_start), DELIMITERS[variations_delimiter])

        fix_seed(p)
        seeds = [int(p.seed) + (i if different_seeds else 0) for i in range(len(prompts))]
        target = "prompt" if prompt_type == "positive" else "negative_prompt"
        jobs = _jobs(p, target, prompts, seeds, int(app.options.max_batch_count))
        validate_jobs(app, jobs)

        collected = Collected()
        for processed in run_jobs(app, jobs):
            collected.add(processed, *generated(processed))
        return self._with_grid(app, p, collected, parts, int(margin_size or 0))

    def _with_grid(self, app: Any, p: Any, collected: Collected, parts: list[str], margin: int) -> Processed:
        if len(collected.images) != 1 << (len(parts) - 1):  # interrupted: the images without a grid
            return collected.processed(p)
        width = max(image.width for image in collected.images)
        height = max(image.height for image in collected.images)
        grid = image_grid(collected.images, rows=1 << ((len(parts) - 1) // 2))
        grid = draw_prompt_matrix(grid, width, height, parts, margin, style=grid_style(app))
        infotext = collected.infotexts[0]
        save_grid(app, p, grid, infotext, "prompt_matrix", collected.warnings)
        result = collected.processed(p, grids=[(grid, infotext)])
        result.p.n_iter = math.ceil(len(collected.images) / max(1, int(p.batch_size)))
        return result


def _in_blocks() -> bool:
    from gradio.context import get_blocks_context

    return get_blocks_context() is not None
