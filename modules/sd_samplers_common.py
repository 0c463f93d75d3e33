"""A1111's `modules.sd_samplers_common`: the names extensions import from it.

`SamplerData` describes one sampler (`sd_samplers.all_samplers` holds them); `constructor(model)` builds
A1111's sampler object (see `sd_samplers.create_sampler`). `InterruptedException` is what A1111 raises
when a job is interrupted; extensions catch it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class SamplerData(NamedTuple):
    name: str
    constructor: Callable[..., Any] | None
    aliases: list[str]
    options: dict[str, Any]

    def total_steps(self, steps: int) -> int:
        """Model evaluations per image: second-order samplers call the model twice per step."""
        return steps * 2 if self.options.get("second_order", False) else steps


class InterruptedException(BaseException):
    pass
