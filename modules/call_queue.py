"""A1111's `modules.call_queue`: run an extension's UI handler through the App's job queue.

`wrap_gradio_gpu_call(func)` returns a handler that runs `func` as a job on the GPU worker (so it
never overlaps a generation, and `process_images` inside it runs where Sumi's jobs run), waits for
it, and turns an exception into A1111's red `<div class='error'>` message as the last output, after
`extra_outputs` (default `[None, ""]`). A first argument `"task(...)"` becomes the job's id, as in
A1111. `wrap_queued_call` only queues; `wrap_gradio_call` only reports errors. `queue_lock` holds
the worker while its `with` block runs. Called from inside a job, all of them run inline.
"""

from __future__ import annotations

import contextvars
import html
import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from modules import errors, shared


def _queued(name: str, func: Callable[..., Any], args: tuple, kwargs: dict, job_id: str | None = None) -> Any:
    queue = shared.app().queue
    if queue.on_worker():
        return func(*args, **kwargs)
    context = contextvars.copy_context()  # gradio's request/progress context travels with the call

    def job() -> Any:
        shared.app().state.begin(job=job_id or name)
        return context.run(func, *args, **kwargs)

    return queue.submit(name, job, job_id).future.result()


def wrap_queued_call(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        return _queued(func.__name__, func, args, kwargs)

    return f


def wrap_gradio_gpu_call(func: Callable[..., Any], extra_outputs: list | None = None) -> Callable[..., Any]:
    name = getattr(func, "__name__", "extension job")

    @wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else None
        job_id = (
            first if isinstance(first, str) and first.startswith("task(") and first.endswith(")") else None
        )
        return _queued(name, func, args, kwargs, job_id)

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(
    func: Callable[..., Any], extra_outputs: list | None = None, add_stats: bool = False
) -> Callable[..., Any]:
    @wraps(func)
    def f(*args: Any, extra_outputs_array: list | None = extra_outputs, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except Exception as e:
            errors.report(f"Error completing request\nArguments: {args} {kwargs}"[:131072], exc_info=True)
            outputs = [None, ""] if extra_outputs_array is None else list(extra_outputs_array)
            return (*outputs, f"<div class='error'>{html.escape(f'{type(e).__name__}: {e}')}</div>")
        if not isinstance(result, (list, tuple)):
            return result
        res = list(result)
        if add_stats and res and isinstance(res[-1], str):
            res[-1] += (
                "<div class='performance'><p class='time'>Time taken: <wbr>"
                f"<span class='measurement'>{_elapsed(time.perf_counter() - started)}</span></p></div>"
            )
        return tuple(res)

    return f


wrap_gradio_call_no_job = wrap_gradio_call


def _elapsed(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes)} min. {seconds:.1f} sec." if minutes else f"{seconds:.1f} sec."


class QueueLock:
    """A1111's `queue_lock`: while a thread holds it, the GPU worker runs nothing but the jobs that
    thread submits (A1111 generates in the holder's thread: `with queue_lock: txt2img(...)` runs the
    job). Re-entrant per thread; a no-op inside a job (the worker is already this thread's)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def acquire(self) -> bool:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth == 0:
            self._local.release = shared.app().queue.hold("extension (queue_lock)")
        return True

    def release(self) -> None:
        self._local.depth -= 1
        release = getattr(self._local, "release", None)
        if self._local.depth == 0 and release is not None:
            self._local.release = None
            release()

    def __enter__(self) -> QueueLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


queue_lock = QueueLock()
