"""A1111's `modules.progress` task bookkeeping, for extensions that queue their own tasks
(agent-scheduler): which task id runs now, which wait, which finished. Sumi's own progress reporting
(`/sdapi/v1/progress`, the UI's bar) reads the job queue, not these."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

current_task: str | None = None
pending_tasks: OrderedDict[str, float] = OrderedDict()
finished_tasks: list[str] = []
recorded_results: list[tuple[str, Any]] = []
recorded_results_limit = 2


def start_task(id_task: str) -> None:
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def finish_task(id_task: str) -> None:
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)
    del finished_tasks[:-16]


def add_task_to_queue(id_job: str) -> None:
    pending_tasks[id_job] = time.time()


def record_results(id_task: str, res: Any) -> None:
    recorded_results.append((id_task, res))
    del recorded_results[:-recorded_results_limit]
