"""A1111's `modules.processing`: the processing objects extensions build, and `process_images`.

The classes live in `modules.sumi.services.jobs.processing`; the functions here find the running App
through `modules.shared`, as every A1111 module-level function does.
"""

from __future__ import annotations

import copy
from typing import Any

from modules import shared
from modules.sumi.services.images.colors import apply_color_correction, setup_color_correction
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessing,
    StableDiffusionProcessingImg2Img,
    StableDiffusionProcessingTxt2Img,
    apply_overlay,
    create_binary_mask,
    first_text,
    fix_seed,
    get_fixed_seed,
    old_hires_fix_first_pass_dimensions,
    opt_C,
    opt_f,
    uncrop,
)

__all__ = [
    "Processed",
    "StableDiffusionProcessing",
    "StableDiffusionProcessingImg2Img",
    "StableDiffusionProcessingTxt2Img",
    "apply_overlay",
    "create_binary_mask",
    "create_infotext",
    "fix_seed",
    "get_fixed_seed",
    "old_hires_fix_first_pass_dimensions",
    "opt_C",
    "opt_f",
    "process_images",
    "process_images_inner",
    "apply_color_correction",
    "setup_color_correction",
    "uncrop",
]


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run a txt2img or img2img job (by the type of `p`) on the running app (A1111 entry point for
    scripts and extensions): on the GPU worker, inline when called from a job (a script's `run`, an
    extension's `postprocess_image` running an inner img2img job), else queued (an extension's own tab)."""
    return shared.app().runner.process(p)


# A1111 calls the job body `process_images_inner`; in Sumi patching it changes nothing.
process_images_inner = process_images


def create_infotext(
    p: StableDiffusionProcessing,
    all_prompts: list[str] | None = None,
    all_seeds: list[int] | None = None,
    all_subseeds: list[int] | None = None,
    comments: Any = None,
    iteration: int = 0,
    position_in_batch: int = 0,
    use_main_prompt: bool = False,
    index: int | None = None,
    all_negative_prompts: list[str] | None = None,
) -> str:
    """The infotext image `index` of job `p` gets (A1111's signature), as Sumi writes it."""
    if index is None:
        index = 0 if use_main_prompt else position_in_batch + iteration * p.batch_size
    q = copy.copy(p)
    scalars = {
        "all_prompts": (all_prompts, first_text(p.prompt)),
        "all_negative_prompts": (all_negative_prompts, first_text(p.negative_prompt)),
        "all_seeds": (all_seeds, p.seed),
        "all_subseeds": (all_subseeds, p.subseed),
    }
    for name, (given, scalar) in scalars.items():  # a job that has not run yet has empty lists
        setattr(q, name, list(given if given is not None else getattr(p, name)) or [scalar] * (index + 1))
    app = shared.app()
    return app.generation.infotext(q, app.models.active, index, p.scheduler or "Automatic")
