"""Training as queued jobs: every trainer kind (embedding, hypernetwork, LoRA, ...) registers here,
runs on the one worker with the loaded checkpoint, and reports through a `TrainingContext`: loss
points (the plot), sample images (the gallery), files written (listed, and the matching registry
refreshed at once so the prompt can use them), progress and interrupt as any other job.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from tqdm import tqdm

from modules.sumi.engine.errors import EngineError, InvalidRequestError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.loop import StepReport
from modules.sumi.services.jobs.queue import Job, JobQueue
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.training.run import LossPoint, RunBook, Sample, TrainingRun

log = logging.getLogger(__name__)

SampleMaker = Callable[[dict[str, Any]], Image.Image | None]
"""A txt2img with A1111 field names (prompt, negative_prompt, steps, sampler_name, cfg_scale, seed,
width, height), run inline on the worker with whatever the trainer has patched in."""


class TrainingContext:
    """What a trainer gets: the model, the run to report to, interrupt, and a way to make samples."""

    def __init__(
        self,
        run: TrainingRun,
        model: SDModel,
        checkpoint_name: str,
        checkpoint_hash: str,
        state: JobState,
        make_sample: SampleMaker,
    ) -> None:
        self.run = run
        self.model = model
        self.checkpoint_name = checkpoint_name
        self.checkpoint_hash = checkpoint_hash
        self._state = state
        self._make_sample = make_sample
        self._bar: tqdm | None = None

    def should_stop(self) -> bool:
        return self._state.interrupted

    def begin(self, start_step: int, message: str = "") -> None:
        """Training proper starts (after dataset preparation) at `start_step` of `run.steps`."""
        self.run.start(start_step)
        self._state.set_step(start_step, self.run.steps)
        self._bar = tqdm(
            total=self.run.steps, initial=start_step, desc=f"Training {self.run.kind} {self.run.name}"
        )
        if message:
            self.say(message)

    def report(self, report: StepReport, epoch: str = "") -> None:
        self.run.add_loss(LossPoint(report.step, report.loss, report.learn_rate))
        self._state.set_step(report.step, self.run.steps)
        self._state.set_textinfo(
            f"Training {self.run.kind} {self.run.name}: step {report.step}/{self.run.steps}, "
            f"loss {report.loss:.5f}, learning rate {report.learn_rate:g}{epoch}"
        )
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{report.loss:.5f}")
            self._bar.update(report.step - self._bar.n)

    def say(self, message: str) -> None:
        self.run.set_message(message)
        self._state.set_textinfo(message)

    def generate(self, fields: dict[str, Any]) -> Image.Image | None:
        """One txt2img now, on the model as it is (e.g. DreamBooth's class images), without touching the
        run: the job state is the training job's again afterwards."""
        job, job_count, job_no = self._state.job, self._state.job_count, self._state.job_no
        image = self._make_sample(fields)
        self._state.job, self._state.job_count, self._state.job_no = job, job_count, job_no
        return image

    def sample(self, fields: dict[str, Any], step: int, folder: Path) -> Path | None:
        """Make one sample image now (with the trainee patched in), save it as `<name>-<step>.png` in
        `folder`, show it as the live preview and in the run's gallery."""
        image = self.generate(fields)
        self._state.set_step(step, self.run.steps)
        if image is None:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.run.name}-{step}.png"
        image.save(path)
        self._state.set_preview(image)
        self.run.add_sample(Sample(step, path, str(fields.get("prompt", ""))))
        return path

    def wrote(self, path: Path) -> None:
        self.run.add_file(Path(path))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


Trainer = Callable[[TrainingContext, Any], None]


@dataclass(frozen=True)
class TrainingKind:
    """One kind of training. `steps(settings)` is the run's length; `name(settings)` what it trains;
    `refresh()` rescans the registry the output files belong to (embeddings, Lora, ...)."""

    kind: str
    train: Trainer
    steps: Callable[[Any], int]
    name: Callable[[Any], str]
    refresh: Callable[[], Any] | None = None


ModelProvider = Callable[[], tuple[SDModel, str, str]]
"""The loaded checkpoint for training: (model, checkpoint name, short hash); called on the worker."""


class TrainingService:
    def __init__(
        self, queue: JobQueue, state: JobState, model: ModelProvider, make_sample: SampleMaker
    ) -> None:
        self.queue = queue
        self.state = state
        self._model = model
        self._make_sample = make_sample
        self.kinds: dict[str, TrainingKind] = {}
        self.runs = RunBook()
        self._ids = itertools.count(1)

    def register(self, kind: TrainingKind) -> None:
        self.kinds[kind.kind] = kind

    def submit(self, kind: str, settings: Any) -> tuple[TrainingRun, Job]:
        """Queue a run; its settings were checked by the caller (the kind's settings class). Returns
        the run (poll `run.view()`) and the job (its future ends with the run's view)."""
        if kind not in self.kinds:
            raise InvalidRequestError(
                f"unknown training kind {kind!r}; expected one of {', '.join(self.kinds)}"
            )
        spec = self.kinds[kind]
        run = TrainingRun(
            f"train-{next(self._ids)}-{int(time.time())}", kind, spec.name(settings), spec.steps(settings)
        )
        self.runs.add(run)
        job = self.queue.submit(f"train-{kind}", lambda: self._execute(spec, run, settings))
        return run, job

    def run(self, kind: str, settings: Any) -> TrainingRun:
        """Submit and wait (A1111's training routes answer when training is over)."""
        run, job = self.submit(kind, settings)
        with contextlib.suppress(EngineError):  # recorded in the run; the caller reports run.view()
            job.future.result()
        return run

    def _execute(self, spec: TrainingKind, run: TrainingRun, settings: Any) -> None:
        self.state.begin(job=f"train-{spec.kind}", job_count=1)
        run.start()
        context: TrainingContext | None = None
        try:
            model, name, short_hash = self._model()
            context = TrainingContext(run, model, name, short_hash, self.state, self._make_sample)
            spec.train(context, settings)
        except EngineError as exc:
            run.finish("failed", str(exc))
            raise
        except BaseException as exc:
            run.finish("failed", f"training failed: {type(exc).__name__}: {exc}")
            raise
        else:
            stopped = self.state.interrupted and run.step < run.steps
            run.finish("interrupted" if stopped else "done")
        finally:
            if context is not None:
                context.close()
            if spec.refresh is not None and run.view().files:
                try:
                    spec.refresh()
                except Exception:  # a refresh failure must not hide the training result
                    log.exception("refreshing after %s training failed", spec.kind)


class CheckedTrainer(Protocol):
    """A trainer whose settings (folders, names) can be checked before anything is queued."""

    def check(self, settings: Any) -> None: ...

    def train(self, context: TrainingContext, settings: Any) -> None: ...


class CheckedKind:
    """A kind of `TrainingService` with an `output_name` and a `steps` count: check, queue, and (for the
    API) wait. A bad request fails in `submit`/`train` before anything is queued."""

    def __init__(
        self,
        training: TrainingService,
        kind: str,
        trainer: CheckedTrainer,
        refresh: Callable[[], Any] | None = None,
    ) -> None:
        self.training = training
        self.kind = kind
        self.trainer = trainer
        training.register(
            TrainingKind(kind, trainer.train, lambda s: s.steps, lambda s: s.output_name, refresh)
        )

    def submit(self, settings: Any) -> tuple[TrainingRun, Job]:
        self.trainer.check(settings)
        return self.training.submit(self.kind, settings)

    def train(self, settings: Any) -> TrainingRun:
        """Check, queue and wait."""
        self.trainer.check(settings)
        return self.training.run(self.kind, settings)
