"""Fixtures for the service tests: a started job queue (its worker thread is the "GPU worker")."""

from __future__ import annotations

import pytest

from modules.sumi.services.jobs.queue import JobQueue
from modules.sumi.services.jobs.state import JobState

WORKER = "sumi-gpu-worker"  # the queue's worker thread name: work "on the worker" runs there


@pytest.fixture
def queue():
    q = JobQueue(JobState())
    yield q
    q.stop()
