"""Another checkpoint for part of a job (the refiner, the hires checkpoint), as A1111's
`reload_model_weights(info=...)` under `SkipWritingToConfig`: the setting `sd_model_checkpoint` is never
written, and the job's own model is active again afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.models.checkpoints import CheckpointInfo
from modules.sumi.services.models.manager import LoadedModel, ModelManager

MAX_CHOICES_LISTED = 20


def find_checkpoint(models: ModelManager, checkpoint: str, what: str = "checkpoint") -> CheckpointInfo:
    """The checkpoint `checkpoint` names (title, name, name with hash, hash, or the shortest title that
    contains it: A1111's `get_closet_checkpoint_match`); InvalidRequestError naming the choices if none."""
    info = models.checkpoints.match(checkpoint)
    if info is None:
        titles = models.checkpoints.titles()
        listed = ", ".join(titles[:MAX_CHOICES_LISTED]) + (" ..." if len(titles) > MAX_CHOICES_LISTED else "")
        raise InvalidRequestError(
            f"Could not find {what} with name {checkpoint!r}; choices: {listed or 'none (no checkpoint files)'}"
        )
    return info


@contextlib.contextmanager
def switched_model(models: ModelManager, checkpoint: str) -> Iterator[LoadedModel]:
    """The named checkpoint (title, name or name-with-hash, as A1111 accepts) on the device for the
    block, WITHOUT changing the sd_model_checkpoint setting; the job's model is active again after
    (kept in the RAM cache per sd_checkpoints_limit/keep_in_cpu). Unknown name: InvalidRequestError
    naming the choices. Runs inside the job worker (no executor round trip -> no deadlock)."""
    info = find_checkpoint(models, checkpoint)
    previous = models.active
    try:
        yield models.borrow(info)
    finally:
        models.give_back(previous)
