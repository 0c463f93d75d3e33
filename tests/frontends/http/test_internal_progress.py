"""A1111's `/internal/progress` (what `requestProgress()` in the page polls) and `/internal/pending-tasks`:
a task id waits, runs or is done; a running one reports progress, ETA, its text and a live preview only
when the page does not have it yet. Jobs of the page, of the API and of extensions that keep their own
queue (agent-scheduler writes `modules.progress`) all show."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image

from modules import progress


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(tmp_path_factory.mktemp("data"), "--api", "--nowebui", loaded=True)


@contextmanager
def held_job(app, task_id: str, steps: tuple[int, int] = (5, 10)) -> Iterator[threading.Event]:
    """A job on the App's queue that has reached `steps` with a preview, until the event is set."""
    running, release = threading.Event(), threading.Event()

    def run() -> str:
        app.state.begin(job=task_id, job_count=1)
        app.state.set_step(*steps)
        app.state.set_textinfo("held by the test")
        app.state.set_preview(Image.new("RGB", (8, 8), "red"))
        running.set()
        release.wait(60)
        return "done"

    job = app.queue.submit("held", run, job_id=task_id)
    try:
        assert running.wait(60)
        yield release
    finally:
        release.set()
        job.future.result(60)


def ask(client, task_id, **fields) -> dict:
    r = client.post("/internal/progress", json={"id_task": task_id, **fields})
    assert r.status_code == 200, r.text
    return r.json()


def test_an_unknown_task_is_waiting_and_nothing_else(client):
    assert ask(client, "task(never)") == {
        "active": False,
        "queued": False,
        "completed": False,
        "progress": None,
        "eta": None,
        "live_preview": None,
        "id_live_preview": -1,
        "textinfo": "Waiting...",
    }


def test_a_running_task_reports_progress_text_and_its_preview_once(app, client):
    with held_job(app, "task(page-1)"):
        first = ask(client, "task(page-1)", id_live_preview=-1)
        assert first["active"] and not first["queued"] and not first["completed"]
        assert first["progress"] == 0.5 and first["eta"] is not None and first["eta"] >= 0
        assert first["textinfo"] == "held by the test"
        assert first["live_preview"].startswith("data:image/")
        encoded = first["live_preview"].split(",", 1)[1]
        assert Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB").getpixel((0, 0)) == (
            255,
            0,
            0,
        )
        again = ask(client, "task(page-1)", id_live_preview=first["id_live_preview"])
        assert again["live_preview"] is None and again["id_live_preview"] == first["id_live_preview"]
        assert ask(client, "task(page-1)", live_preview=False)["live_preview"] is None
    done = ask(client, "task(page-1)")
    assert done["completed"] and not done["active"] and not done["queued"]


def test_sdapi_progress_has_no_job_left_once_a_job_ends(app, client):
    """A1111's `state.end()` sets `job_count` to 0: webuiapi's `util_wait_for_ready` and SillyTavern's
    model switch wait for `progress == 0 and job_count == 0`, which a stale count would never give."""
    with held_job(app, "task(wait)"):
        state = client.get("/sdapi/v1/progress").json()
        assert state["state"]["job_count"] == 1 and state["progress"] == 0.5
    idle = client.get("/sdapi/v1/progress").json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0 and idle["current_task"] is None


def test_a_task_behind_another_is_queued_with_its_place(app, client):
    with held_job(app, "task(first)") as release:
        second = app.queue.submit("second", lambda: "ok", job_id="task(second)")
        behind = ask(client, "task(second)")
        assert behind["queued"] and not behind["active"] and behind["textinfo"] == "In queue: 1/1"
        assert client.get("/internal/pending-tasks").json() == {"size": 1, "tasks": ["task(second)"]}
        release.set()
        assert second.future.result(60) == "ok"
    assert ask(client, "task(second)")["completed"]
    assert client.get("/internal/pending-tasks").json() == {"size": 0, "tasks": []}


def test_an_api_job_is_the_current_task_while_it_runs(app, client):
    """A generation from /sdapi/v1/txt2img is a task too: `modules.progress.current_task` names it."""
    seen: list[str | None] = []

    def note_current_task(params) -> None:
        seen.append(progress.current_task)

    app.callbacks.add("cfg_denoiser", note_current_task)
    try:
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "a fox", "steps": 2, "width": 64, "height": 64})
    finally:
        app.callbacks.remove_function(note_current_task)
    assert r.status_code == 200, r.text
    assert seen and seen[0] is not None and seen[0].startswith("task(")
    assert ask(client, seen[0])["completed"] and progress.current_task is None


def test_an_extensions_own_queue_shows_through_modules_progress(client):
    """agent-scheduler: `add_task_to_queue`, then `start_task` when it runs it, `finish_task` after."""
    progress.add_task_to_queue("task(ext)")
    assert ask(client, "task(ext)")["queued"] and "task(ext)" in progress.pending_tasks
    progress.start_task("task(ext)")
    assert ask(client, "task(ext)")["active"] and progress.current_task == "task(ext)"
    progress.finish_task("task(ext)")
    assert ask(client, "task(ext)")["completed"] and progress.finished_tasks[-1] == "task(ext)"
    assert progress.current_task is None


def test_a_bad_progress_request_is_a_422_not_a_500(client):
    r = client.post("/internal/progress", json={"id_task": "x", "id_live_preview": "not a number"})
    assert r.status_code == 422


def test_a_number_for_live_preview_is_a_422_as_the_schema_says(client):
    r = client.post("/internal/progress", json={"id_task": "x", "live_preview": 0})
    assert r.status_code == 422


def test_quicksettings_hint_names_every_setting_with_its_label(app, client):
    hint = client.get("/internal/quicksettings-hint").json()
    names = [row["name"] for row in hint]
    assert names == list(app.options.data_labels) and len(names) == len(set(names))
    labels = {row["name"]: row["label"] for row in hint}
    assert labels["sd_model_checkpoint"] == str(app.options.data_labels["sd_model_checkpoint"].label)
    assert labels["CLIP_stop_at_last_layers"] and all(isinstance(v, str) for v in labels.values())
