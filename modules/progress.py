"""A1111's `modules.progress` task bookkeeping, for extensions that queue their own tasks
(agent-scheduler): which task id runs now (`current_task`), which wait (`pending_tasks`), which
finished (`finished_tasks`). The names read the App's job queue, which also records every job it runs
(a page job, an API job, an extension's), so an extension sees what A1111 would show it; what an
extension writes here is what the page's `/internal/progress` polling reads."""

from __future__ import annotations

from typing import Any

from modules import shared
from modules.sumi.services.jobs.tasks import TaskBook

recorded_results_limit = 2
_fallback = TaskBook()  # before the App runs (an extension imported early)


def _book() -> TaskBook:
    app = shared.running_app()
    return app.queue.tasks if app is not None else _fallback


def start_task(id_task: str) -> None:
    _book().start(id_task)


def finish_task(id_task: str) -> None:
    _book().finish(id_task)


def add_task_to_queue(id_job: str) -> None:
    _book().add(id_job)


def record_results(id_task: str, res: Any) -> None:
    _book().record(id_task, res)


def __getattr__(name: str) -> Any:
    views = {
        "current_task": lambda b: b.current,
        "pending_tasks": lambda b: b.pending,
        "finished_tasks": lambda b: b.finished,
        "recorded_results": lambda b: b.recorded,
    }
    if name in views:
        return views[name](_book())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
