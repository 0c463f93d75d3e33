"""Another checkpoint on the device for a part of a job (hires checkpoint, refiner), without touching
the `sd_model_checkpoint` setting; the job's own model comes back afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.models.manager import LoadedModel, ModelManager


@contextlib.contextmanager
def switched_model(models: ModelManager, checkpoint: str) -> Iterator[LoadedModel]:
    """The named checkpoint (title, name or name-with-hash, as A1111 accepts) on the device for the
    block, WITHOUT changing the sd_model_checkpoint setting; the job's model is active again after
    (kept in the RAM cache per sd_checkpoints_limit/keep_in_cpu). Unknown name: InvalidRequestError
    naming the choices. Runs inside the job worker (no executor round trip -> no deadlock)."""
    info = models.checkpoints.match(checkpoint)
    if info is None:
        titles = ", ".join(models.checkpoints.titles()) or "none found"
        raise InvalidRequestError(f"Could not find checkpoint with name {checkpoint!r}; choose from {titles}")
    previous = models.active
    setting = models.options.data.get("sd_model_checkpoint")
    # inside the worker: the manager's own (locked) load, not its executor
    loaded = models._load(info)  # noqa: SLF001
    try:
        yield loaded
    finally:
        if previous is not None:
            models._load(previous.checkpoint)  # noqa: SLF001
        models.options.data["sd_model_checkpoint"] = setting
