"""What a user sees of one training run: its loss curve, sample images, files written, and status.

Written by the worker thread (the trainer reports through `TrainingContext`), read by the UI's poll and
the API; every read gets a copy, never a list the worker is appending to.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LossPoint:
    step: int
    loss: float
    learn_rate: float


@dataclass(frozen=True)
class Sample:
    step: int
    path: Path
    prompt: str


@dataclass
class RunView:
    """A consistent copy of a run for display (plain values only)."""

    id: str
    kind: str
    name: str
    status: str  # "queued" | "running" | "done" | "interrupted" | "failed"
    step: int
    steps: int
    losses: list[LossPoint]
    samples: list[Sample]
    files: list[Path]
    message: str
    started: float | None
    finished: float | None

    @property
    def eta_seconds(self) -> float | None:
        if self.started is None or self.step <= 0 or self.status != "running":
            return None
        done = self.losses[-1].step if self.losses else self.step
        first = self.losses[0].step - 1 if self.losses else 0
        rate = (time.time() - self.started) / max(done - first, 1)
        return rate * (self.steps - self.step)


class TrainingRun:
    def __init__(self, run_id: str, kind: str, name: str, steps: int) -> None:
        self._lock = threading.Lock()
        self.id, self.kind, self.name, self.steps = run_id, kind, name, steps
        self.status = "queued"
        self.step = 0
        self.losses: list[LossPoint] = []
        self.samples: list[Sample] = []
        self.files: list[Path] = []
        self.message = ""
        self.started: float | None = None
        self.finished: float | None = None

    def start(self, step: int = 0) -> None:
        with self._lock:
            self.status, self.step, self.started = "running", step, time.time()

    def add_loss(self, point: LossPoint) -> None:
        with self._lock:
            self.losses.append(point)
            self.step = point.step

    def add_sample(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def add_file(self, path: Path) -> None:
        with self._lock:
            if path not in self.files:
                self.files.append(path)

    def set_message(self, message: str) -> None:
        with self._lock:
            self.message = message

    def finish(self, status: str, message: str = "") -> None:
        with self._lock:
            self.status, self.finished = status, time.time()
            if message:
                self.message = message

    def view(self) -> RunView:
        with self._lock:
            return RunView(
                self.id,
                self.kind,
                self.name,
                self.status,
                self.step,
                self.steps,
                list(self.losses),
                list(self.samples),
                list(self.files),
                self.message,
                self.started,
                self.finished,
            )


@dataclass
class RunBook:
    """The runs of this server session, newest last (what the Train tab and the API list)."""

    runs: list[TrainingRun] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, run: TrainingRun) -> None:
        with self._lock:
            self.runs.append(run)
            del self.runs[:-50]

    def get(self, run_id: str) -> TrainingRun | None:
        with self._lock:
            return next((r for r in self.runs if r.id == run_id), None)

    def latest(self) -> TrainingRun | None:
        with self._lock:
            return self.runs[-1] if self.runs else None
