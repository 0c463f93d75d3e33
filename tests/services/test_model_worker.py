"""The model manager runs loads, unloads and VAE swaps on the job worker, whoever calls."""

from __future__ import annotations

import threading

from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.settings.options import Options
from tests.services.conftest import WORKER


def manager(queue) -> tuple[ModelManager, list]:
    seen: list = []
    models = ModelManager(None, None, Options(), None, executor=queue)  # type: ignore[arg-type]

    def record(what):
        def body(*args):
            seen.append((what, threading.current_thread().name))
            return what

        return body

    models._load = record("load")  # type: ignore[method-assign]
    models._offload = record("offload")  # type: ignore[method-assign]
    models._load_vae = record("vae")  # type: ignore[method-assign]
    models._unload_all = record("unload_all")  # type: ignore[method-assign]
    return models, seen


def test_model_changes_called_from_any_thread_run_on_the_worker(queue):
    models, seen = manager(queue)
    assert models.get() == "load" and models.load(None) == "load"
    models.offload(), models.load_vae(None), models.unload_all()
    assert seen == [(what, WORKER) for what in ("load", "load", "offload", "vae", "unload_all")]


def test_model_changes_inside_a_job_run_inline(queue):
    models, seen = manager(queue)
    assert queue.run("job", models.get) == "load"  # no deadlock waiting on its own queue
    assert seen == [("load", WORKER)]


def test_without_an_executor_the_manager_runs_on_the_calling_thread():
    models = ModelManager(None, None, Options(), None)  # type: ignore[arg-type]
    models._load = lambda info: threading.current_thread().name  # type: ignore[method-assign]
    assert models.get() == threading.current_thread().name
