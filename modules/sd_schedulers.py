"""A1111's `modules.sd_schedulers`: the schedule types ("Automatic", "Karras", ...) by name and label.

`function` is None: Sumi computes its sigmas inside its own sampling loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.sumi.engine.sampling.samplers import SCHEDULE_TYPES


@dataclass
class Scheduler:
    name: str
    label: str
    function: Any = None
    default_rho: float = -1
    need_inner_model: bool = False
    aliases: list[str] = field(default_factory=list)


schedulers: list[Scheduler] = [
    Scheduler(
        t.name,
        t.label,
        aliases=list(t.aliases),
        default_rho=t.default_rho,
        need_inner_model=t.need_inner_model,
    )
    for t in SCHEDULE_TYPES
]
schedulers_map: dict[str, Scheduler] = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
