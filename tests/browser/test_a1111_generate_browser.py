"""A queueing extension bound to A1111's Generate wiring (`demo.dependencies`, as agent-scheduler's Enqueue)
in Chromium: its button, pressed after the user typed a prompt and set the steps, seed and a script's
text box, records values that `modules.txt2img.txt2img` turns into that job. The fake extension:
tests/fixtures/queue_extension.py; the wiring itself: tests/compat/test_a1111_generate_wiring.py."""

from __future__ import annotations

import json

import pytest

from tests.app_support import serve
from tests.browser_support import open_page, set_number, small_job, wait_until
from tests.fixtures.files import write_files
from tests.fixtures.queue_extension import EXT, QUEUE_EXTENSION, extension_module


@pytest.fixture(scope="module")
def served(make_module_app, tmp_path_factory, chromium):
    data = tmp_path_factory.mktemp("a1111-generate-browser") / "data"
    write_files(data / "extensions" / EXT, {"scripts/fake_queue.py": QUEUE_EXTENSION})
    app = make_module_app(data, "--skip-install")
    errors: list[str] = []
    with serve(app) as url, open_page(chromium, url, errors=errors) as page:
        yield app, page, errors


def test_queue_it_records_the_page_values_and_replays_them_as_that_job(served):
    app, page, errors = served
    module = extension_module(app)
    module.TASKS.clear()
    small_job(page, "a green triangle queued")
    set_number(page, "txt2img_seed", 4321)
    note = page.locator("#fake_queue_note_t textarea")
    note.fill("typed note")
    note.press("Tab")
    page.click("#txt2img_queue_it")
    wait_until(lambda: len(module.TASKS) == 1)
    tab, named, _ = module.TASKS[0]
    named = json.loads(named)
    assert tab == "txt2img" and named["prompt"] == "a green triangle queued"
    assert named["id_task"].startswith("task(")  # submit() filled A1111's hidden task id
    assert (named["width"], named["height"]) == (64, 64)
    images, info_json, _, _ = module.replay()
    info = json.loads(info_json)
    assert (info["prompt"], info["steps"], info["seed"]) == ("a green triangle queued", 2, 4321)
    assert "Queue note: typed note" in info["infotexts"][0] and len(images) == 1
    assert not errors
