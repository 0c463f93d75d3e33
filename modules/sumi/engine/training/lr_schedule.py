"""Learning-rate schedules in A1111's syntax: `0.005:100, 1e-3:1000, 1e-5`.

Each `rate:step` pair applies while the step number is below `step`; a last rate without a step (or
with step -1) runs to the end of training. A schedule whose last pair ends before the maximum step
count ends training there (A1111 does the same). A plain number is a constant rate. The same syntax
gives the gradient-clipping threshold its schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

from modules.sumi.engine.training.errors import TrainingError


@dataclass(frozen=True)
class LearnRateSchedule:
    """`pieces` are (rate, end step) pairs in order; a rate applies to steps below its end step."""

    pieces: tuple[tuple[float, int], ...]
    text: str = ""

    @classmethod
    def parse(cls, text: str | float | int, max_steps: int, what: str = "learning rate") -> LearnRateSchedule:
        """Read A1111's schedule text; raises TrainingError naming `what` on anything malformed."""
        if max_steps < 1:
            raise TrainingError(f"the number of steps must be at least 1 (got {max_steps})")
        source = str(text).strip()
        if not source:
            raise TrainingError(f"the {what} is empty")
        pieces: list[tuple[float, int]] = []
        last_end = 0
        for part in (p.strip() for p in source.split(",")):
            rate, end = _pair(part, max_steps, what, source)
            if end <= last_end:
                raise TrainingError(
                    f"the {what} schedule {source!r}: step {end} does not come after step {last_end}"
                )
            pieces.append((rate, min(end, max_steps)))
            last_end = end
            if end >= max_steps:
                break
        return cls(tuple(pieces), source)

    def rate_at(self, step: int) -> float | None:
        """The rate for step `step` (0-based), or None once the schedule has ended."""
        for rate, end in self.pieces:
            if step < end:
                return rate
        return None

    @property
    def end_step(self) -> int:
        """The first step the schedule no longer covers."""
        return self.pieces[-1][1]


def _pair(part: str, max_steps: int, what: str, source: str) -> tuple[float, int]:
    rate_text, _, step_text = part.partition(":")
    try:
        rate = float(rate_text)
    except ValueError:
        raise TrainingError(
            f"the {what} schedule {source!r}: {rate_text.strip()!r} is not a number"
        ) from None
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise TrainingError(f"the {what} schedule {source!r}: the rate {rate_text.strip()} must be above 0")
    if not step_text.strip():
        return rate, max_steps
    try:
        end = int(step_text)
    except ValueError:
        raise TrainingError(
            f"the {what} schedule {source!r}: {step_text.strip()!r} is not a step number"
        ) from None
    if end == -1:
        return rate, max_steps
    if end < 1:
        raise TrainingError(
            f"the {what} schedule {source!r}: step {end} must be at least 1 (or -1 for the end)"
        )
    return rate, end
