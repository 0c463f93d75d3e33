"""Runs generation jobs on the single worker: the one way the UI, the API, the built-in scripts and
extensions (`processing.process_images`) get images.

A txt2img or img2img job runs in A1111's order: the always-on scripts' `setup`, then the selected script's
`run` (which usually calls `process_images` once or many times), else a plain job; the
generation service calls the always-on scripts' other hooks. Called from inside a running job (a
script, an extension's queued handler) everything runs inline, since waiting on the queue would wait
on itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modules.sumi.engine.accel.memory import PeakTracker
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.images.saving import SaveSettings
from modules.sumi.services.jobs.generation import GenerationService, job_kind
from modules.sumi.services.jobs.img2img_batch import BatchFolders, run_batch
from modules.sumi.services.jobs.processing import JobPerformance, Processed, StableDiffusionProcessing
from modules.sumi.services.jobs.queue import Job, JobQueue


class JobRunner:
    def __init__(self, queue: JobQueue, generation: GenerationService) -> None:
        self.queue = queue
        self.generation = generation

    def validate(self, p: StableDiffusionProcessing) -> None:
        """InvalidRequestError for sizes, steps, CFG or a sampler out of range, before anything runs."""
        self.generation.validate(p)

    def submit(self, p: StableDiffusionProcessing, job_id: str | None = None) -> Job:
        """Check `p` now (raises before anything is queued), then queue it as a txt2img or img2img job
        (by the type of `p`); the job's future holds the result. What the UI does, so it can show
        progress while waiting."""
        self.validate(p)
        return self.queue.submit(job_kind(p), lambda: self.run_job(p), job_id or p.force_task_id or None)

    def txt2img(self, p: StableDiffusionProcessing, job_id: str | None = None) -> Processed:
        """Check `p`, run it as a txt2img job with its scripts on the worker, and wait for it.

        `job_id` names the job in the queue and in progress reports (the API's `force_task_id`)."""
        if self.queue.on_worker():  # a script's job inside a job: inline, it would wait on itself
            self.validate(p)
            return self.run_job(p)
        return self.submit(p, job_id).future.result()

    def img2img(self, p: StableDiffusionProcessing, job_id: str | None = None) -> Processed:
        """The same for an img2img job (`StableDiffusionProcessingImg2Img`)."""
        return self.txt2img(p, job_id)

    def img2img_batch(
        self, p: Any, folders: BatchFolders, args: Sequence[Any] = (), job_id: str | None = None
    ) -> Processed:
        """A1111's img2img Batch tab (`modules.img2img.process_batch`): `p` once per image of
        `folders.input_dir`, as one job on the worker (inline when called from a job), and wait for it.
        Each image runs the selected script (`args`: A1111's script args) or the plain job."""
        if self.queue.on_worker():
            self.validate_batch(p, folders)
            return self._batch_body(p, folders, args)
        return self.submit_img2img_batch(p, folders, args, job_id).future.result()

    def submit_img2img_batch(
        self, p: Any, folders: BatchFolders, args: Sequence[Any] = (), job_id: str | None = None
    ) -> Job:
        """Check the batch (its output folder) now, then queue it; what the UI does, to show progress."""
        self.validate_batch(p, folders)
        return self.queue.submit("img2img", lambda: self._batch_body(p, folders, args), job_id)

    def _batch_body(self, p: Any, folders: BatchFolders, args: Sequence[Any]) -> Processed:
        def one(job: Any) -> Processed:
            result = job.scripts.run(job, *args) if job.scripts is not None and args else None
            return result if result is not None else self.generation.process(job)

        options = self.generation.options
        with options.job_view():
            processed = run_batch(
                p,
                folders,
                args,
                process=one,
                confine=self._confined,
                interrupted=lambda: self.generation.state.interrupted,
                samples_format=str(options.samples_format),
                settings=SaveSettings.from_options(options),
            )
        limit = int(options.img2img_batch_show_results_limit)  # A1111: what the UI gets back
        if limit >= 0:
            processed.images, processed.infotexts = processed.images[:limit], processed.infotexts[:limit]
        return processed

    def validate_batch(self, p: Any, folders: BatchFolders) -> None:
        """The batch's output folder inside the data folder; the job's other values as any job's
        (checked with a stand-in image: the real ones are read one by one)."""
        if folders.output_dir.strip():
            self._confined(folders.output_dir.strip())

    def _confined(self, folder: str) -> Path:
        try:
            return self.generation.paths.confine(folder)
        except ValueError as exc:
            raise InvalidRequestError(f"Batch output folder: {exc}") from exc

    def process(self, p: StableDiffusionProcessing) -> Processed:
        """A1111's `process_images`: the job without `setup`/`run` of scripts (a script's `run` calls
        this), on the worker."""
        return self.queue.call("process_images", lambda: self.generation.process(p))

    def run_job(self, p: StableDiffusionProcessing) -> Processed:
        """The body of a txt2img or img2img job (runs on the worker): the always-on scripts' `setup`, then the
        selected script runs the job, else a plain job. A selected script that raises is recorded in
        the scripts' errors and re-raised."""
        tracker, start = PeakTracker(), time.perf_counter()
        tracker.start()
        with self.generation.options.job_view():  # the job's own settings, whatever changes meanwhile
            processed = None
            if p.scripts is not None:
                p.scripts.setup_scrips(p, is_ui=not p.is_api)
                processed = self._run_selected_script(p)
            if processed is None:
                processed = self.generation.process(p)
        processed.performance = JobPerformance(time.perf_counter() - start, tracker.peaks())
        return processed

    def _run_selected_script(self, p: StableDiffusionProcessing) -> Processed | None:
        try:
            return p.scripts.run(p, *p.script_args)
        except Exception as exc:
            index = int(p.script_args[0] or 0) if p.script_args else 0
            scripts = p.scripts.selectable_scripts
            if 0 < index <= len(scripts):
                p.scripts.errors.report(scripts[index - 1].filename or "script", "run", exc)
            raise
