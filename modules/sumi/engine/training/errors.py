"""The error a trainer raises for settings a user can fix (a bad schedule, an empty dataset...)."""

from __future__ import annotations

from modules.sumi.engine.errors import InvalidRequestError


class TrainingError(InvalidRequestError):
    """A training setting or dataset that cannot be used; the message names the field at fault."""
