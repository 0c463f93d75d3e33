"""The refiner (A1111 1.6+): `refiner_checkpoint` takes over the sampling at `refiner_switch_at`.

What A1111 does (`processing.process_images_inner`, `sd_samplers_common.apply_refiner`,
`processing_scripts/refiner.py`), here:
- the name is resolved when the job starts (an unknown name is an error naming the choices);
- a refiner that is the job's own checkpoint changes nothing (no switch, no infotext);
- no `refiner_switch_at` switches at the first step;
- with Hires. fix the setting `hires_fix_refiner_pass` says in which pass it runs (default "second
  pass": only the hires pass; `model_switch(..., hires_pass=True)` is what that pass asks);
- the infotext gets `Refiner: <name [hash]>`, `Refiner switch at: <fraction>` (and `Hires refiner`,
  `Refiner switch by sampling steps`) once the switch happens;
- every batch starts on the job's model again, and the setting `sd_model_checkpoint` never changes
  (`model_switch.switched_model`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.model_switch import ModelSwitch
from modules.sumi.services.jobs.model_switch import find_checkpoint, switched_model
from modules.sumi.services.jobs.processing import StableDiffusionProcessing
from modules.sumi.services.models.manager import LoadedModel, ModelManager
from modules.sumi.services.settings.options import Options

NO_REFINER = (None, "", "None", "none")
SCRIPT_TITLE = "refiner"  # the `alwayson_scripts` key (A1111's built-in script "Refiner"), any case
SECOND_PASS = "second pass"


def wanted(p: StableDiffusionProcessing) -> str | None:
    """The refiner the job asks for, None for none."""
    name = p.refiner_checkpoint
    return None if name in NO_REFINER else str(name)


def prepare(p: StableDiffusionProcessing, models: ModelManager) -> None:
    """A1111's start of a job: `refiner_checkpoint_info` from the name; bad values are errors."""
    name = wanted(p)
    at = p.refiner_switch_at
    if at is not None and (isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at <= 1):
        raise InvalidRequestError(f"refiner_switch_at must be a number from 0 to 1, got {at!r}")
    p.refiner_checkpoint_info = None if name is None else find_checkpoint(models, name, "refiner checkpoint")


def model_switch(
    p: StableDiffusionProcessing,
    models: ModelManager,
    options: Options,
    current: LoadedModel,
    stack: contextlib.ExitStack,
    *,
    hires_pass: bool = False,
) -> ModelSwitch | None:
    """The engine's ModelSwitch for one batch of `p` (the hires pass: `hires_pass=True`), None when the
    refiner does not run in it. The refiner is loaded only if the switch happens, and stays active
    until `stack` closes (after the batch is decoded); then the job's model is active again."""
    info = p.refiner_checkpoint_info
    if info is None or str(info.filename) == str(current.checkpoint.filename):
        return None
    hires_option = str(options.hires_fix_refiner_pass)
    if getattr(p, "enable_hr", False) and not _runs_in(hires_option, hires_pass):
        return None
    at = p.refiner_switch_at
    by_steps = bool(options.refiner_switch_by_sample_steps)

    def load() -> SDModel:
        loaded = stack.enter_context(switched_model(models, info.title))
        params = p.extra_generation_params
        if getattr(p, "enable_hr", False) and hires_option != SECOND_PASS:
            params["Hires refiner"] = hires_option
        params["Refiner"] = loaded.checkpoint.short_title
        if at is not None:
            params["Refiner switch at"] = at
        if by_steps:
            params["Refiner switch by sampling steps"] = True
        return loaded.sd

    return ModelSwitch(0.0 if at is None else float(at), load, by_steps)


def _runs_in(hires_option: str, hires_pass: bool) -> bool:
    """With Hires. fix: does the refiner run in this pass (setting `hires_fix_refiner_pass`)?"""
    if hires_option == "first pass":
        return not hires_pass
    return hires_pass or hires_option != SECOND_PASS


def apply_script_args(p: StableDiffusionProcessing, alwayson_scripts: Mapping[str, Any] | None) -> None:
    """`alwayson_scripts: {"Refiner": {"args": [enabled, checkpoint, switch_at]}}` as A1111's built-in
    script reads them: disabled or no checkpoint clears the refiner, else both fields are set."""
    entry = next((v for k, v in (alwayson_scripts or {}).items() if k.lower() == SCRIPT_TITLE), None)
    if entry is None:
        return
    args = entry.get("args", []) if isinstance(entry, Mapping) else None
    if not isinstance(args, list):
        raise InvalidRequestError(
            'alwayson_scripts.Refiner must be {"args": [enabled, checkpoint, switch_at]}'
        )
    enabled, checkpoint, at = [*args, None, None, None][:3]
    if not isinstance(enabled, bool) or not isinstance(checkpoint, (str, type(None))):
        raise InvalidRequestError(
            f"alwayson_scripts.Refiner.args must be [true/false, checkpoint name, switch at], got {args!r}"
        )
    if not enabled or checkpoint in NO_REFINER:
        p.refiner_checkpoint = p.refiner_switch_at = None
    else:
        p.refiner_checkpoint, p.refiner_switch_at = checkpoint, 0.8 if at is None else at
