"""Whose job is it: each queued job remembers the web UI login that asked for it, and with several logins
a page's Interrupt and Skip stop only that login's job (or one nobody owns: the API's, an extension's);
pressed while another login's job runs, Interrupt takes the presser's own waiting jobs out of the queue.
Without logins (one user) they act on the running job, as A1111's."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from modules.sumi.services.jobs.queue import Job, JobQueue


class Logins:
    """Stands for the web UI's `current_login`: the login of the request being handled."""

    def __init__(self, queue: JobQueue) -> None:
        self.user: str | None = None
        queue.owner_of = lambda: self.user

    def submit(self, queue: JobQueue, user: str | None, run) -> Job:
        self.user = user
        try:
            return queue.submit(f"{user}'s job", run)
        finally:
            self.user = None


def blocking(queue: JobQueue, logins: Logins, user: str | None) -> tuple[Job, threading.Event, list[bool]]:
    """A running job of `user` that waits for `release`, then records whether it was interrupted."""
    started, release, seen = threading.Event(), threading.Event(), []

    def run() -> str:
        started.set()
        release.wait(10)
        seen.append(queue.state.interrupted)
        return "done"

    job = logins.submit(queue, user, run)
    assert started.wait(10)
    return job, release, seen


@pytest.fixture
def logins(queue) -> Logins:
    return Logins(queue)


def test_each_job_remembers_the_login_that_asked_for_it(queue, logins):
    assert logins.submit(queue, "alice", lambda: 1).owner == "alice"
    assert queue.submit("from the API", lambda: 2).owner is None


def test_another_login_cannot_interrupt_or_skip_a_running_job(queue, logins):
    job, release, seen = blocking(queue, logins, "alice")
    assert "another user's" in queue.interrupt_for("bob")
    assert "another user's" in queue.skip_for("bob")
    release.set()
    assert job.future.result(10) == "done" and seen == [False]
    assert not queue.state.skipped


def test_the_owner_interrupts_their_own_job(queue, logins):
    job, release, seen = blocking(queue, logins, "alice")
    assert queue.interrupt_for("alice") == ""
    release.set()
    job.future.result(10)
    assert seen == [True]


@pytest.mark.parametrize(("owner", "presser"), [(None, "bob"), ("alice", None), (None, None)])
def test_a_job_nobody_owns_or_a_server_without_logins_is_interrupted_as_in_a1111(
    queue, logins, owner, presser
):
    job, release, seen = blocking(queue, logins, owner)
    assert queue.interrupt_for(presser) == ""
    release.set()
    job.future.result(10)
    assert seen == [True]


def test_interrupt_under_another_login_s_job_takes_the_presser_s_waiting_jobs_out_of_the_queue(queue, logins):
    running, release, seen = blocking(queue, logins, "alice")
    bobs = [logins.submit(queue, "bob", lambda: "bob's") for _ in range(2)]
    alices = logins.submit(queue, "alice", lambda: "alice's second")
    note = queue.interrupt_for("bob")
    assert "2 jobs left the queue" in note and "another user's" in note
    assert queue.pending() == [alices.id]  # at once: their pages see them finished
    assert all(queue.tasks.status(j.id).completed for j in bobs)
    release.set()
    assert running.future.result(10) == "done" and seen == [False]
    assert alices.future.result(10) == "alice's second"
    for job in bobs:
        with pytest.raises(CancelledError):
            job.future.result(10)
    queue.run("after", lambda: None)
    assert queue.pending() == []


def test_with_nothing_of_theirs_waiting_the_presser_is_told_whose_job_runs(queue, logins):
    job, release, _ = blocking(queue, logins, "alice")
    assert queue.interrupt_for("bob") == "The running job is another user's: only they can interrupt it."
    release.set()
    job.future.result(10)


@pytest.mark.parametrize(("owner", "presser"), [(None, None), ("bob", "bob"), (None, "bob")])
def test_a_page_s_interrupt_while_its_own_job_waits_takes_out_only_that_job(queue, logins, owner, presser):
    running, release, seen = blocking(queue, logins, "alice" if presser else None)
    own = logins.submit(queue, owner, lambda: "own")
    other = logins.submit(queue, owner, lambda: "another tab's")
    assert queue.cancel_waiting(own.id, presser)
    assert queue.pending() == [other.id] and queue.tasks.status(own.id).completed
    release.set()
    assert running.future.result(10) == "done" and seen == [False]  # the running job went on
    assert other.future.result(10) == "another tab's"
    with pytest.raises(CancelledError):
        own.future.result(10)


def test_a_job_that_runs_or_is_another_login_s_is_not_taken_out_by_its_task_id(queue, logins):
    running, release, _ = blocking(queue, logins, "alice")
    alices = logins.submit(queue, "alice", lambda: "alice's")
    assert not queue.cancel_waiting(running.id, "alice")  # running: Interrupt's business
    assert not queue.cancel_waiting(alices.id, "bob")
    assert not queue.cancel_waiting("task(unknown)", None)
    assert queue.pending() == [alices.id]
    release.set()
    assert alices.future.result(10) == "alice's"
