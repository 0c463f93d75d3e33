"""A1111's `modules.shared_state`: `State`, the class of `shared.state` (extensions type-check against
it and read its fields; Tiled Diffusion imports it)."""

from __future__ import annotations

from modules.sumi.services.jobs.state import JobState as State

__all__ = ["State"]
