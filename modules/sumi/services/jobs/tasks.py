"""Which task ids wait, which one runs and which finished: A1111's `modules.progress` bookkeeping.

The job queue writes it for every job it runs; extensions that keep their own queue (agent-scheduler)
write it through the `modules.progress` facade; `/internal/progress` reads it to tell a page whether
its task waits, runs or is done.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

FINISHED_KEPT = 16  # A1111 remembers the last 16 finished tasks
RESULTS_KEPT = 2


@dataclass(frozen=True)
class TaskStatus:
    active: bool
    queued: bool
    completed: bool
    position: int  # 1-based place among the waiting tasks, 0 when not waiting
    waiting: int  # how many tasks wait


class TaskBook:
    """Thread-safe; its three collections are the live objects A1111's module globals were, so an
    extension that reads `progress.pending_tasks` sees the queue as it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: str | None = None
        self.pending: OrderedDict[str, float] = OrderedDict()
        self.finished: list[str] = []
        self.recorded: list[tuple[str, Any]] = []

    def add(self, task_id: str) -> None:
        with self._lock:
            self.pending.setdefault(task_id, time.time())

    def start(self, task_id: str) -> None:
        with self._lock:
            self.current = task_id
            self.pending.pop(task_id, None)

    def finish(self, task_id: str) -> None:
        with self._lock:
            if self.current == task_id:
                self.current = None
            self.pending.pop(task_id, None)
            if task_id in self.finished:
                self.finished.remove(task_id)
            self.finished.append(task_id)
            del self.finished[:-FINISHED_KEPT]

    def record(self, task_id: str, result: Any) -> None:
        with self._lock:
            self.recorded.append((task_id, result))
            del self.recorded[:-RESULTS_KEPT]

    def result(self, task_id: str) -> Any:
        """The recorded result of task `task_id` (one of the last RESULTS_KEPT), else None."""
        with self._lock:
            return next((result for tid, result in reversed(self.recorded) if tid == task_id), None)

    def waiting(self) -> list[str]:
        """The waiting task ids, oldest first."""
        with self._lock:
            return sorted(self.pending, key=self.pending.__getitem__)

    def status(self, task_id: str | None) -> TaskStatus:
        waiting = self.waiting()
        with self._lock:
            queued = task_id in self.pending
            return TaskStatus(
                active=task_id is not None and task_id == self.current,
                queued=queued,
                completed=task_id in self.finished,
                position=waiting.index(task_id) + 1 if queued else 0,
                waiting=len(waiting),
            )
