"""A page and the job it asked for: A1111's ↪️ restore progress (a page reloaded while its job runs
offers ↪️, which shows that job's progress and then its images; a job the server no longer knows gets a
note, not a hang), and Interrupt on a page whose job still waits, which takes out that job only."""

from __future__ import annotations

import threading

from tests.browser_support import INFO, PROMPT, open_page, small_job, wait_text

RESTORE = "#txt2img_restore_progress"
TASK_KEY = "txt2img_task_id"


def reload(page) -> None:
    page.reload()
    page.wait_for_selector(PROMPT, timeout=90_000)
    page.wait_for_function("() => window.sumiSizesFollowed === true")


def test_a_page_reloaded_while_its_job_runs_restores_the_job_s_progress_and_images(chromium, demo_server):
    app = demo_server.app
    sampling, release = threading.Event(), threading.Event()

    def hold(params) -> None:  # the job waits at its first step until the page was reloaded
        sampling.set()
        release.wait(120)

    with open_page(chromium, demo_server.url) as page:
        assert not page.locator(RESTORE).is_visible()
        small_job(page, "a green star, white background", steps=3)
        app.callbacks.add("cfg_denoiser", hold)
        try:
            page.click("#txt2img_generate")
            assert sampling.wait(120)
            task_id = app.queue.current.id if app.queue.current else None
            assert task_id
            page.wait_for_function(f"id => localStorage.getItem('{TASK_KEY}') === id", arg=task_id)
            reload(page)
            page.locator(RESTORE).wait_for(state="visible")
            assert page.input_value("#txt2img_prompt textarea") == ""  # a new page: nothing of the job
            page.click(RESTORE)
            wait_text(page, "#txt2img_progress", "%")  # the running job's progress bar
        finally:
            release.set()
            app.callbacks.remove_function(hold)
        info = wait_text(page, INFO, "a green star, white background")
        assert "Steps: 3" in info and page.locator("#txt2img_gallery img").count() >= 1
        page.wait_for_function(f"() => localStorage.getItem('{TASK_KEY}') === null")
        assert not page.locator(RESTORE).is_visible()
        reload(page)  # the job's end was shown: nothing to restore
        assert not page.locator(RESTORE).is_visible()

        page.evaluate(f"localStorage.setItem('{TASK_KEY}', 'task(unknown)')")  # e.g. the server restarted
        reload(page)
        page.click(RESTORE)
        wait_text(page, "#txt2img_error", "Couldn't restore the job's progress")
        page.wait_for_function(f"() => localStorage.getItem('{TASK_KEY}') === null")


def test_interrupt_on_a_page_whose_job_waits_takes_out_that_job_and_the_running_one_goes_on(
    chromium, demo_server
):
    """One user, two tabs: the first runs a job, the second's waits behind it. The second tab's Interrupt
    takes out its own job (the page sent its task id); the first tab's job is not interrupted (A1111
    would stop it)."""
    app = demo_server.app
    sampling, release = threading.Event(), threading.Event()

    def hold(params) -> None:  # the first job waits at its first step until the second tab is done
        sampling.set()
        release.wait(120)

    with open_page(chromium, demo_server.url) as first, open_page(chromium, demo_server.url) as second:
        small_job(first, "a red circle, white background", steps=3)
        small_job(second, "a blue square, white background", steps=3)
        app.callbacks.add("cfg_denoiser", hold)
        try:
            first.click("#txt2img_generate")
            assert sampling.wait(120)
            running = app.queue.current
            second.click("#txt2img_generate")
            wait_text(second, "#txt2img_progress", "Waiting in queue")
            second.click("#txt2img_interrupt")
            wait_text(second, "#txt2img_error", "Interrupted before it started")
            assert app.queue.pending() == [] and app.queue.current is running
            assert not app.state.interrupted
        finally:
            release.set()
            app.callbacks.remove_function(hold)
        info = wait_text(first, INFO, "a red circle, white background")
        assert "Steps: 3" in info and not app.state.interrupted
        assert second.locator("#txt2img_gallery img").count() == 0
