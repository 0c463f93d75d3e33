"""The job runner: the one way the UI, the API, the built-in scripts and `process_images` run jobs."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.services.jobs.generation import GenerationService
from modules.sumi.services.jobs.processing import Processed, StableDiffusionProcessingTxt2Img
from modules.sumi.services.jobs.runner import JobRunner
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.settings.options import Options
from tests.services.conftest import WORKER


class FakeGeneration:
    """Validates like the real service; `process` records the thread and the order of calls."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self._real = GenerationService(None, Options(), None, JobState())  # type: ignore[arg-type]
        self.options = self._real.options

    def validate(self, p) -> None:
        self._real.validate(p)

    def process(self, p) -> Processed:
        self.calls.append(("process", threading.current_thread().name))
        return Processed(p, [], 1, infotexts=[], all_seeds=[1], all_subseeds=[1])


class FakeScripts:
    """The parts of a ScriptRunner the runner calls, in A1111's order."""

    def __init__(self, calls: list, result=None, fail: bool = False) -> None:
        self.calls, self.result, self.fail = calls, result, fail
        self.selectable_scripts = [SimpleNamespace(filename="scripts/mine.py")]
        self.errors = SimpleNamespace(report=lambda *args: calls.append(("report", args[0], args[1])))

    def setup_scrips(self, p, is_ui: bool = True) -> None:
        self.calls.append(("setup", is_ui))

    def run(self, p, *args):
        self.calls.append(("run", args))
        if self.fail:
            raise RuntimeError("script failed")
        return self.result


def job(**changes) -> StableDiffusionProcessingTxt2Img:
    values = {"prompt": "a", "steps": 2, "width": 64, "height": 64, **changes}
    return StableDiffusionProcessingTxt2Img(**values)


@pytest.fixture
def runner(queue):
    calls: list = []
    return JobRunner(queue, FakeGeneration(calls)), calls


def test_txt2img_runs_on_the_worker_and_a_bad_job_is_refused_before_it_is_queued(runner):
    r, calls = runner
    assert isinstance(r.txt2img(job()), Processed)
    assert calls == [("process", WORKER)]
    with pytest.raises(InvalidRequestError, match="width"):
        r.txt2img(job(width=40))
    with pytest.raises(InvalidRequestError, match="steps"):
        r.submit(job(steps=0))
    assert r.queue.pending() == [] and calls == [("process", WORKER)]


def test_submit_gives_the_job_a1111_task_ids(runner):
    r, _ = runner
    first = r.submit(job())
    named = r.submit(job(), job_id="task(abc)")
    assert first.id.startswith("task(") and named.id == "task(abc)"
    assert isinstance(first.future.result(10), Processed) and isinstance(named.future.result(10), Processed)


def test_inside_a_job_txt2img_and_process_run_inline(runner):
    r, calls = runner
    inner = r.queue.run("outer", lambda: (r.txt2img(job()), r.process(job())))
    assert [type(x) for x in inner] == [Processed, Processed]
    assert calls == [("process", WORKER), ("process", WORKER)]


def test_the_selected_script_runs_after_setup_and_replaces_the_plain_job(runner):
    r, calls = runner
    made = Processed(job(), [], 7, infotexts=[], all_seeds=[7], all_subseeds=[7])
    p = job(scripts=FakeScripts(calls, result=made), script_args=[1, "x"])
    assert r.txt2img(p) is made
    assert calls == [("setup", True), ("run", (1, "x"))]


def test_without_a_selected_script_the_plain_job_runs_and_api_jobs_say_so(runner):
    r, calls = runner
    p = job(scripts=FakeScripts(calls), script_args=[0])
    p.is_api = True
    r.txt2img(p)
    assert calls == [("setup", False), ("run", (0,)), ("process", WORKER)]


def test_a_selected_script_that_raises_is_recorded_and_re_raised(runner):
    r, calls = runner
    p = job(scripts=FakeScripts(calls, fail=True), script_args=[1])
    with pytest.raises(RuntimeError, match="script failed"):
        r.txt2img(p)
    assert calls[-1] == ("report", "scripts/mine.py", "run")
