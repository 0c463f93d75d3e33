"""An extension's tab built with A1111's `ui_toprow.Toprow` (tests/fixtures/toprow_extension.py, mov2mov's
pattern) in Chromium: Generate is clickable, Interrupt and Skip appear while the job runs (the page
script's `showSubmitButtons`), Interrupt stops the job, Ctrl+Enter in its prompt generates."""

from __future__ import annotations

import time

import pytest

from tests.app_support import serve
from tests.browser_support import open_page
from tests.fixtures.toprow_extension import write_fake_extension


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_module_app, chromium):
    data_dir = tmp_path_factory.mktemp("toprow-browser")
    write_fake_extension(data_dir / "extensions" / "fake-ext")
    app = make_module_app(data_dir, "--api")
    jobs = next(d.module.JOBS for d in app.scripts.scripts_data if d.path.endswith("fake_tab.py"))
    with serve(app) as url, open_page(chromium, url) as page:
        page.get_by_role("tab", name="Fake").click()
        page.locator("#fake_prompt textarea").wait_for()
        yield page, app, jobs


WATCH_INTERRUPTING = """() => {
    window.sawInterrupting = false;
    const shown = () => {
        const button = document.querySelector("#fake_interrupting");
        if (button && getComputedStyle(button).display !== "none" && button.offsetParent !== null)
            window.sawInterrupting = true;
    };
    new MutationObserver(shown).observe(document.body, {attributes: true, childList: true, subtree: true});
}"""


def _steps(page, value: int) -> None:
    number = page.locator("#fake_steps input[type=number]")
    number.fill(str(value))
    number.press("Enter")


def test_interrupt_shows_while_the_job_runs_and_stops_it(served):
    page, app, jobs = served
    assert not page.locator("#fake_interrupt").is_visible() and not page.locator("#fake_skip").is_visible()
    page.fill("#fake_prompt textarea", "a blue circle")
    _steps(page, 150)
    done = len(jobs)
    page.click("#fake_generate")  # not covered by the hidden Interrupt/Skip
    page.locator("#fake_interrupt").wait_for(state="visible")
    assert page.locator("#fake_skip").is_visible()
    deadline = time.monotonic() + 60
    while app.state.sampling_step < 1 and time.monotonic() < deadline:  # the job is sampling
        time.sleep(0.1)
    page.evaluate(WATCH_INTERRUPTING)
    page.click("#fake_interrupt")
    # shown until the job ends, which can be one step (a few ms) after the interrupt: recorded when shown
    page.wait_for_function("() => window.sawInterrupting === true")
    page.locator("#fake_interrupting").wait_for(state="hidden", timeout=120_000)  # the job ended
    assert not page.locator("#fake_interrupt").is_visible()
    assert len(jobs) == done + 1 and jobs[-1][2] == "a blue circle"
    assert app.state.interrupted  # the job stopped at the interrupt, not after 150 steps


def test_ctrl_enter_in_the_prompt_generates(served):
    page, app, jobs = served
    _steps(page, 2)
    done = len(jobs)
    page.fill("#fake_prompt textarea", "a green star")
    page.locator("#fake_prompt textarea").press("Control+Enter")
    page.locator("#html_info_fake").get_by_text("a green star").first.wait_for(timeout=120_000)
    assert len(jobs) == done + 1 and jobs[-1][0].startswith("task(")  # the page script's task id
