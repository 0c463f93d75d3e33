"""Where start-up time goes, recorded as A1111's `modules.timer.Timer` records it.

`record(category)` adds the time since the last record (or since the timer was made) to `category`;
`subcategory(name)` is a `with` block whose records are filed under "name/..." and whose whole time is
recorded as `name` when it ends. `dump()` is A1111's `{"total": s, "records": {category: s}}`, what
`/internal/profile-startup` answers; `summary()` is the console's "Startup time: 7.2s (load scripts:
1.1s, ...)" text. Extensions record into the same timer through `modules.timer.startup_timer`.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

# records shorter than this stay out of the console summary (they stay in dump() and the profile page)
SUMMARY_CUTOFF_S = 0.1


class TimerSubcategory:
    """A `with` block of a Timer: records inside it are filed under "<category>/"."""

    def __init__(self, timer: Timer, category: str) -> None:
        self.timer = timer
        self.category = category
        self.start = 0.0
        self.outer_base = timer.base_category

    def __enter__(self) -> TimerSubcategory:
        self.start = time.perf_counter()
        self.timer.base_category = self.outer_base + self.category + "/"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.timer.close_subcategory(self)


class Timer:
    """Seconds per category, in the order the categories were first recorded."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.start = time.perf_counter()
        self.records: dict[str, float] = {}
        self.total = 0.0
        self.base_category = ""

    def elapsed(self) -> float:
        """Seconds since the last record (or reset), and the clock restarted."""
        with self._lock:
            now = time.perf_counter()
            seconds, self.start = now - self.start, now
            return seconds

    def add_time_to_record(self, category: str, amount: float) -> None:
        with self._lock:
            self.records[category] = self.records.get(category, 0.0) + amount

    def record(self, category: str, extra_time: float = 0, disable_log: bool = False) -> None:
        """File the time since the last record under `category` (within the current subcategory)."""
        with self._lock:
            seconds = self.elapsed() + extra_time
            self.add_time_to_record(self.base_category + category, seconds)
            self.total += seconds

    def close_subcategory(self, block: TimerSubcategory) -> None:
        """The block's whole time under its name; what ran after its last inner record counts in the
        total (A1111 adds that rest to the block's record a second time)."""
        with self._lock:
            self.base_category = block.outer_base
            self.add_time_to_record(block.outer_base + block.category, time.perf_counter() - block.start)
            self.total += self.elapsed()

    def subcategory(self, name: str) -> TimerSubcategory:
        """`with timer.subcategory("load scripts"):` files what is recorded inside as "load scripts/...";
        the time before the block is not counted in it."""
        self.elapsed()
        return TimerSubcategory(self, name)

    def summary(self) -> str:
        """ "7.2s (load scripts: 1.1s, create ui: 2.0s)": the total and the top-level records of 0.1 s+."""
        with self._lock:
            parts = [
                f"{name}: {seconds:.1f}s"
                for name, seconds in self.records.items()
                if seconds >= SUMMARY_CUTOFF_S and "/" not in name
            ]
            total = f"{self.total:.1f}s"
        return f"{total} ({', '.join(parts)})" if parts else total

    def dump(self) -> dict[str, object]:
        with self._lock:
            return {"total": self.total, "records": dict(self.records)}

    def reset(self) -> None:
        with self._lock:
            self.start = time.perf_counter()
            self.records = {}
            self.total = 0.0
            self.base_category = ""
