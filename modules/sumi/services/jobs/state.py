"""Progress of the running job, in A1111's `shared.state` names, plus interrupt and skip."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from PIL import Image

from modules.sumi.engine.sampling.loop import SamplingControl


@dataclass
class ProgressSnapshot:
    active: bool
    progress: float  # 0..1 over the whole job
    eta_relative: float  # seconds left, estimated
    job: str
    job_count: int
    job_no: int
    sampling_step: int
    sampling_steps: int
    interrupted: bool
    skipped: bool
    textinfo: str
    preview: Image.Image | None
    preview_id: int
    job_timestamp: str


class JobState:
    """Written by the worker thread, read by the UI and the API (A1111's `shared.state`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.control = SamplingControl()
        self.job = ""
        self.job_count = 0
        self.job_no = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.textinfo = ""
        self.time_start: float | None = None
        self.current_image: Image.Image | None = None
        self.id_live_preview = 0
        self.job_timestamp = ""
        # A1111 fields that extensions read or write; Sumi itself does not use them.
        self.current_image_sampling_step = 0
        self.current_latent = None
        self.stopping_generation = False
        self.processing_has_refined_job_count = False
        self.oom = False
        self.server_start = time.time()

    # -- A1111 names used by extensions --------------------------------------------------------
    @property
    def interrupted(self) -> bool:
        return self.control.interrupted

    @interrupted.setter
    def interrupted(self, value: bool) -> None:
        self.control.interrupted = bool(value)

    @property
    def skipped(self) -> bool:
        return self.control.skipped

    @skipped.setter
    def skipped(self, value: bool) -> None:
        self.control.skipped = bool(value)

    def interrupt(self) -> None:
        self.control.interrupted = True

    def skip(self) -> None:
        self.control.skipped = True

    def nextjob(self) -> None:
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0
            self.control.skipped = False

    def assign_current_image(self, image: Image.Image | None) -> None:
        self.set_preview(image)

    def set_current_image(self) -> None:
        """A1111 decodes a preview here; Sumi's sampling loop sends its own previews."""

    def dict(self) -> dict:
        """A1111's `state.dict()` (what its /internal/progress reports)."""
        names = ("skipped", "interrupted", "stopping_generation", "job", "job_count", "job_timestamp")
        return {name: getattr(self, name) for name in names} | {
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }

    # -- worker side -------------------------------------------------------------------------------
    def reset_control(self) -> None:
        """A new queued job starts: an interrupt or skip meant for the previous one no longer applies."""
        with self._lock:
            self.control = SamplingControl()

    def begin(self, job: str = "(unknown)", job_count: int = 1) -> None:
        with self._lock:
            self.control = SamplingControl()
            self.job, self.job_count, self.job_no = job, job_count, 0
            self.sampling_step = self.sampling_steps = 0
            self.textinfo = ""
            self.current_image = None
            self.stopping_generation = False
            self.time_start = time.time()
            self.job_timestamp = time.strftime("%Y%m%d%H%M%S")

    def end(self) -> None:
        """The job is over. As A1111's `state.end()`, `job_count` drops to 0: clients wait for
        `progress == 0 and job_count == 0` (webuiapi's `util_wait_for_ready`, SillyTavern's model switch)."""
        with self._lock:
            self.job, self.job_count = "", 0
            self.time_start = None
            self.current_image = None

    def set_step(self, step: int, steps: int) -> None:
        self.sampling_step, self.sampling_steps = step, steps

    def set_textinfo(self, text: str) -> None:
        """The progress text the browser and /sdapi/v1/progress show (e.g. "compiling (once): ...")."""
        with self._lock:
            self.textinfo = text

    def set_preview(self, image: Image.Image | None) -> None:
        if image is not None:
            self.current_image = image
            self.id_live_preview += 1

    # -- reader side -------------------------------------------------------------------------------
    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            start = self.time_start
            active = start is not None
            progress = self._progress() if active else 0.0
            elapsed = time.time() - start if start is not None else 0.0
            eta = elapsed / progress - elapsed if progress > 0 else 0.0
            return ProgressSnapshot(
                active,
                progress,
                eta,
                self.job,
                self.job_count,
                self.job_no,
                self.sampling_step,
                self.sampling_steps,
                self.interrupted,
                self.skipped,
                self.textinfo,
                self.current_image,
                self.id_live_preview,
                self.job_timestamp,
            )

    def _progress(self) -> float:
        if self.job_count <= 0:
            return 0.0
        within = self.sampling_step / self.sampling_steps if self.sampling_steps else 0.0
        return min(1.0, (self.job_no + within) / self.job_count)
