"""One worker thread runs every generation job in order; the UI and the API both submit here.

Jobs run one at a time so two requests never share a model's patched weights. A failing job reports
its exception to its submitter and the worker goes on with the next one.

Each job remembers who asked for it (`owner`: the web UI's login, read through `owner_of`, which the web
UI sets; None for the API, extensions and scripts). With several logins, a page's Interrupt and Skip
(`interrupt_for`, `skip_for`) stop only a job of the same login, or one nobody owns; pressed while
another login's job runs, Interrupt takes the presser's own waiting jobs out of the queue instead
(A1111 stops whatever runs, so anyone could stop anyone's job).

`hold()` is A1111's `queue_lock` for code outside the queue: the worker then serves only the holding
thread, running the jobs that thread submits (in order, still on the worker thread) until it lets go;
everyone else's jobs wait. An extension that runs its own queue and calls `modules.txt2img.txt2img`
inside `with queue_lock:` (agent-scheduler) gets its job run, not a worker waiting on itself.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modules.sumi.engine.errors import EngineError
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.jobs.tasks import TaskBook
from modules.sumi.util.logs import report_exception

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Job:
    id: str
    name: str
    run: Callable[[], Any]
    future: Future = field(default_factory=Future)
    owner: str | None = None  # the web UI login that asked for it; None: the API, an extension, a script


def new_task_id() -> str:
    """A task id as A1111's page makes them (`task(...)`), random: a page that kept one can find its job
    again (restore progress), and nobody can guess another's."""
    return f"task({secrets.token_hex(8)})"


def _stoppable_by(job: Job, user: str | None) -> bool:
    """`user` (a web UI login, None without logins) may stop `job`: one of theirs, one nobody owns, or
    any job when there are no logins."""
    return user is None or job.owner in (None, user)


class JobQueue:
    def __init__(self, state: JobState) -> None:
        self.state = state
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self.current: Job | None = None
        self._held: dict[threading.Thread, queue.Queue[Job | None]] = {}  # holder -> its jobs (hold())
        self.tasks = TaskBook()  # A1111's task ids: waiting, running, finished (for /internal/progress)
        self._waiting: dict[int, Job] = {}  # by identity: two jobs may carry one task id
        self.owner_of: Callable[[], str | None] = lambda: None  # who is submitting (the web UI sets it)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="sumi-gpu-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, name: str, run: Callable[[], Any], job_id: str | None = None) -> Job:
        self.start()
        job = Job(job_id or new_task_id(), name, run, owner=self.owner_of())
        with self._lock:
            self._pending.append(job.id)
            self._waiting[id(job)] = job
            inbox = self._held.get(threading.current_thread())
        self.tasks.add(job.id)
        (inbox or self._queue).put(job)
        return job

    def hold(self, name: str = "hold") -> Callable[[], None]:
        """Keep the worker for the calling thread (A1111's `queue_lock`) once the jobs queued before
        have run; returns `release`. Until then the worker runs only the jobs this thread submits, in
        order; other threads' jobs wait. Called on the worker itself, it holds nothing."""
        if self.on_worker():
            return lambda: None
        holder, inbox, serving = threading.current_thread(), queue.Queue(), threading.Event()

        def serve() -> None:
            with self._lock:
                self._held[holder] = inbox
            serving.set()
            outer = self.current
            while (job := inbox.get()) is not None:
                self.current = job
                self._run(job)
            self.current = outer

        def release() -> None:
            with self._lock:
                self._held.pop(holder, None)
            inbox.put(None)

        self.submit(name, serve)
        serving.wait()
        return release

    def run(self, name: str, run: Callable[[], Any], timeout: float | None = None) -> Any:
        """Submit and wait; exceptions from the job are raised here."""
        return self.submit(name, run).future.result(timeout=timeout)

    def on_worker(self) -> bool:
        """True when called from the worker thread, i.e. from inside a running job."""
        return self._thread is not None and threading.current_thread() is self._thread

    def call(self, name: str, run: Callable[[], T]) -> T:
        """`run()` on the worker and wait; inline when already there (a job waiting on the queue would deadlock).

        For A1111 helpers that extensions call both from their own UI and from inside a job."""
        return run() if self.on_worker() else self.run(name, run)

    def pending(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def find(self, task_id: str) -> Job | None:
        """The running or waiting job with id `task_id`, else None (finished, cancelled or unknown)."""
        current = self.current
        if current is not None and current.id == task_id:
            return current
        return self._waiting_job(task_id)

    def _waiting_job(self, task_id: str) -> Job | None:
        with self._lock:
            return next((job for job in self._waiting.values() if job.id == task_id), None)

    # -- a page's Interrupt and Skip ---------------------------------------------------------------
    def may_stop(self, user: str | None) -> bool:
        """Whether `user` (a web UI login, None without logins) may stop the running job: one of theirs,
        one nobody owns, or any job when there are no logins."""
        current = self.current
        return current is None or _stoppable_by(current, user)

    def interrupt_for(self, user: str | None) -> str:
        """A page's Interrupt: the running job stops when `user` may stop it (""); otherwise `user`'s
        waiting jobs leave the queue, and the message says so."""
        if self.may_stop(user):
            self.state.interrupt()
            return ""
        with self._lock:
            theirs = [job for job in self._waiting.values() if job.owner == user]
        cancelled = sum(self._cancel_waiting(job) for job in theirs)
        if cancelled:
            jobs = "job" if cancelled == 1 else f"{cancelled} jobs"
            return f"Your waiting {jobs} left the queue; the running job is another user's and goes on."
        return "The running job is another user's: only they can interrupt it."

    def cancel_waiting(self, task_id: str, user: str | None) -> bool:
        """Take the waiting job `task_id` out of the queue when `user` may (their own, or nobody's; any
        without logins): a page's Interrupt while its own job still waits. False when that job is not
        waiting (running, finished, unknown) or is another login's: nothing changes."""
        job = self._waiting_job(task_id)
        return job is not None and _stoppable_by(job, user) and self._cancel_waiting(job)

    def skip_for(self, user: str | None) -> str:
        """A page's Skip: the running job skips its image when `user` may stop it (""), else a message."""
        if self.may_stop(user):
            self.state.skip()
            return ""
        return "The running job is another user's: only they can skip its image."

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self.current = job
            self._run(job)
            self.current = None

    def _cancel_waiting(self, job: Job) -> bool:
        """Take a job that has not started out of the queue now (its page sees it finished); False when
        it started meanwhile. The worker skips it when it comes to it."""
        if not job.future.cancel():
            return False
        self._forget_waiting(job)
        self.tasks.finish(job.id)
        return True

    def _forget_waiting(self, job: Job) -> None:
        with self._lock:
            if self._waiting.pop(id(job), None) is not None:
                self._pending.remove(job.id)

    def _run(self, job: Job) -> None:
        self._forget_waiting(job)
        if job.future.set_running_or_notify_cancel():
            self._execute(job)
        else:  # cancelled while it waited: a page polling for it stops waiting
            self.tasks.finish(job.id)

    def _execute(self, job: Job) -> None:
        self.state.reset_control()
        self.tasks.start(job.id)
        try:
            job.future.set_result(job.run())
        except EngineError as exc:  # a value the user can fix: one line, the submitter shows it
            log.warning("Job %s (%s) failed: %s", job.id, job.name, exc)
            job.future.set_exception(exc)
        except BaseException as exc:  # a failed job must never stop the worker
            report_exception(log, "Job %s (%s) failed", exc, job.id, job.name)
            job.future.set_exception(exc)
        finally:
            self.state.end()
            self.tasks.finish(job.id)
