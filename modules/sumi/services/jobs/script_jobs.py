"""What Sumi's built-in scripts (Prompt matrix, X/Y/Z plot, Prompts from file) share: copying a job,
checking every job before the first image, collecting results, grid limits, saving and labelling grids.

The scripts run inside the job worker and call `process_images` once or many times; these helpers keep
each copy of `p` independent and make one `Processed` of the many.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images import saving as image_files
from modules.sumi.services.images.grids import GridStyle
from modules.sumi.services.images.namegen import image_file_decoration
from modules.sumi.services.jobs.generation import job_kind
from modules.sumi.services.jobs.infotext import params_line, split_infotext
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessing

log = logging.getLogger(__name__)

MAX_SEED = 4294967294
DEFAULT_MAX_GRID_MP = 200  # A1111's default of opt `img_max_size_mp`


def random_seed() -> int:
    return random.randrange(MAX_SEED)


def fix_seed(p: StableDiffusionProcessing) -> None:
    """A1111's `processing.fix_seed`: a seed or variation seed of -1 becomes a random number now."""
    p.seed = _fixed(p.seed)
    p.subseed = _fixed(p.subseed)


def _fixed(seed: Any) -> Any:
    return random_seed() if seed in (None, "", -1, "-1") else seed


def job_copy(p: StableDiffusionProcessing, **changes: Any) -> StableDiffusionProcessing:
    """A shallow copy of `p` whose lists and dicts can be changed without touching `p`."""
    job = copy.copy(p)
    job.styles = list(p.styles)
    job.override_settings = dict(p.override_settings)
    job.extra_generation_params = dict(p.extra_generation_params)
    job.comments = dict(p.comments)
    job.engine_extensions = dict(p.engine_extensions)
    job.controlnet_units = [copy.copy(unit) for unit in p.controlnet_units]  # a job fills in unit fields
    job.warnings = []
    for name, value in changes.items():
        setattr(job, name, value)
    return job


def validate_jobs(app: Any, jobs: Sequence[StableDiffusionProcessing]) -> None:
    """Check every job's sizes, steps, CFG and sampler before the first image is made."""
    for job in jobs:
        app.runner.validate(job)


def run_jobs(app: Any, jobs: Sequence[StableDiffusionProcessing]) -> Iterator[Processed]:
    """Run the jobs one after another (inside the job worker) and stop after the one the user interrupted.

    The flag is read after a job, never before the first: an interrupt of an earlier job stays set
    until the next job begins."""
    for job in jobs:
        yield app.runner.process(job)
        if app.state.interrupted:
            return


def max_grid_mp(options: Any) -> float:
    return float(getattr(options, "img_max_size_mp", DEFAULT_MAX_GRID_MP) or DEFAULT_MAX_GRID_MP)


def check_grid_size(cells: int, width: int, height: int, options: Any, what: str) -> None:
    """A1111's limit (opt `img_max_size_mp`) on the pixels of a grid, checked before generating."""
    megapixels = cells * width * height / 1_000_000
    limit = max_grid_mp(options)
    if megapixels >= limit:
        raise InvalidRequestError(
            f"{what}: the grid would be too large ({cells} images, {megapixels:.0f} megapixels); "
            f"the limit is {limit:g} megapixels (setting img_max_size_mp)"
        )


def generated(processed: Processed) -> tuple[list[Image.Image], list[str]]:
    """The images a job generated with their infotexts: without its batch grid (which A1111 leaves out
    when a script sets `do_not_save_grid`) and without ControlNet detected maps (empty infotexts)."""
    first = processed.index_of_first_image
    pairs = [
        (image, info)
        for image, info in zip(processed.images[first:], processed.infotexts[first:], strict=False)
        if info
    ]
    return [image for image, _ in pairs], [info for _, info in pairs]


def with_params(infotext: str, params: dict[str, Any]) -> str:
    """`infotext` with `params` added to its parameter line (before `Version`, as A1111 writes them)."""
    prompt, negative, line = split_infotext(infotext)
    added = params_line(params)
    if not added:
        return infotext
    head, sep, version = line.rpartition(", Version: ")
    line = f"{head}, {added}{sep}{version}" if sep else (f"{line}, {added}" if line else added)
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}".strip()


def grid_style(app: Any) -> GridStyle:
    return GridStyle.from_options(app.options)


def save_grid(
    app: Any,
    p: StableDiffusionProcessing,
    grid: Image.Image,
    infotext: str,
    prefix: str,
    warnings: list[str] | None = None,
) -> Path | None:
    """Save a script's grid as `<prefix>-NNNN.<grid_format>` in the grids folder (opt `grid_save`), or
    `<prefix>-NNNN-<the samples' filename pattern>` with `grid_extended_filename`, as A1111's
    `save_image(..., grid=True)` names X/Y/Z plot and Prompt matrix grids.

    A grid that cannot be written (full disk, no permission...) is not lost: the job still returns
    it, and the reason is logged and added to `warnings`."""
    o = app.options
    if p.do_not_save_grid or not o.grid_save:
        return None
    per_tab = getattr(o, f"outdir_{job_kind(p)}_grids")  # txt2img-grids or img2img-grids, as A1111
    base = app.paths.resolve(p.outpath_grids or o.outdir_grids or per_tab)
    directory = base / datetime.now().strftime("%Y-%m-%d") if o.grid_save_to_dirs else base
    decoration = _grid_decoration(o, p, grid) if o.grid_extended_filename else ""
    try:
        return image_files.save_image_file(
            grid,
            directory,
            seed=0 if decoration else None,  # None: the counter alone
            prompt=p.main_prompt,
            infotext=infotext,
            extension=o.grid_format,
            pnginfo_enabled=o.enable_pnginfo,
            basename_prefix=prefix,
            pattern=decoration,
            settings=image_files.SaveSettings.from_options(o),
        )
    except Exception as exc:
        message = (
            f"Could not save the grid to {directory}: {type(exc).__name__}: {exc}; the grid is still returned"
        )
        log.warning(message)
        if warnings is not None and message not in warnings:
            warnings.append(message)
        return None


def _grid_decoration(o: Any, p: StableDiffusionProcessing, grid: Image.Image) -> str:
    """The samples' filename pattern for a script's grid: the job's first seed and prompt."""
    pattern = image_files.default_filename_pattern(o.samples_filename_pattern, o.save_to_dirs)
    seed = (getattr(p, "all_seeds", None) or [p.seed])[0]
    prompt = (getattr(p, "all_prompts", None) or [p.main_prompt])[0]
    return image_file_decoration(p, 0, seed, prompt, grid, pattern)


@dataclass
class Collected:
    """Results of several jobs, in order, merged into one `Processed` at the end."""

    images: list[Image.Image] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    template: StableDiffusionProcessing | None = None

    def add(self, processed: Processed, images: Sequence[Image.Image], infotexts: Sequence[str]) -> None:
        """A job's images (its first `len(images)` prompts and seeds go with them)."""
        job = processed.p
        for i, (image, infotext) in enumerate(zip(images, infotexts, strict=True)):
            self.add_image(image, infotext, job, i)
        self.warn(processed.warnings)

    def add_image(
        self, image: Image.Image, infotext: str, job: StableDiffusionProcessing, index: int = 0
    ) -> None:
        def at(values: Sequence[Any], default: Any) -> Any:
            return values[min(index, len(values) - 1)] if values else default

        self.images.append(image)
        self.infotexts.append(infotext)
        self.prompts.append(at(job.all_prompts, ""))
        self.negative_prompts.append(at(job.all_negative_prompts, ""))
        self.seeds.append(at(job.all_seeds, job.seed))
        self.subseeds.append(at(job.all_subseeds, job.subseed))
        self.template = self.template or job

    def warn(self, warnings: Sequence[str]) -> None:
        self.warnings += [w for w in warnings if w not in self.warnings]

    def processed(
        self,
        p: StableDiffusionProcessing,
        grids: Sequence[tuple[Image.Image, str]] = (),
        include_images: bool = True,
    ) -> Processed:
        """One `Processed`: the grids first (`index_of_first_image` after them), then the images."""
        result = job_copy(self.template or p)
        result.all_prompts, result.all_negative_prompts = list(self.prompts), list(self.negative_prompts)
        result.all_seeds, result.all_subseeds = list(self.seeds), list(self.subseeds)
        images = [g for g, _ in grids] + (self.images if include_images else [])
        infotexts = [i for _, i in grids] + (self.infotexts if include_images else [])
        first = len(grids) if include_images and self.images else min(1, len(grids))
        seed = self.seeds[0] if self.seeds else p.seed
        return Processed(
            result,
            images,
            seed,
            infotexts[0] if infotexts else "",
            all_seeds=result.all_seeds,
            all_subseeds=result.all_subseeds,
            index_of_first_image=first,
            infotexts=infotexts,
            warnings=list(self.warnings),
        )
