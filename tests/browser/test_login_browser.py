"""Logging in from Chromium: with --gradio-auth the login page (and only what it needs) loads without a
login, and after logging in the whole page works, its own calls included; with only --api-auth the
browser's HTTP Basic login opens the page."""

from __future__ import annotations

import contextlib
import threading

from tests.app_support import running_server
from tests.browser_support import (
    PAGE_LOAD_TIMEOUT_MS,
    PROMPT,
    TIMEOUT_MS,
    generate,
    small_job,
    wait_text,
)

USER, PASSWORD = "painter", "Browser-Login-Pass-2236"


def refused_requests(page) -> list[str]:
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
    return refused


def test_login_page_lets_the_user_in_and_the_page_then_works(tmp_path, chromium):
    flags = ["--api", "--gradio-auth", f"{USER}:{PASSWORD}"]
    with running_server(tmp_path, flags) as server:
        context = chromium.new_context(viewport={"width": 1280, "height": 1000})
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            before = refused_requests(page)
            page.goto(server.url)
            page.get_by_label("username").fill(USER)
            page.get_by_label("password").fill(PASSWORD)
            page.get_by_role("button", name="Login").click()
            page.wait_for_selector(PROMPT)
            assert before == [], "the login page needed something the gate refused"
            small_job(page, "a red circle")
            generate(page)
            assert before == []
            ping = page.evaluate("fetch('./internal/ping').then(r => r.status)")
            assert ping == 200
        finally:
            context.close()


def test_with_only_an_api_login_the_browser_signs_in_with_basic_auth(tmp_path, chromium):
    with running_server(tmp_path, ["--api", "--api-auth", f"{USER}:{PASSWORD}"]) as server:
        anonymous = chromium.new_context()
        try:
            refused = anonymous.request.get(server.url)
            assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Basic")
        finally:
            anonymous.close()
        context = chromium.new_context(http_credentials={"username": USER, "password": PASSWORD})
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            refused = refused_requests(page)
            page.goto(server.url)
            page.wait_for_selector(PROMPT)
            small_job(page, "a blue square")
            generate(page)
            assert refused == []
        finally:
            context.close()


ALICE, BOB = ("alice", "Alice-Pass-4417"), ("bob", "Bob-Pass-8820")


@contextlib.contextmanager
def logged_in(chromium, server, login: tuple[str, str]):
    """A page of `server` after logging in as `login` (its own browser context: its own session)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server.url)
        page.get_by_label("username").fill(login[0])
        page.get_by_label("password").fill(login[1])
        page.get_by_role("button", name="Login").click()
        page.wait_for_selector(PROMPT, timeout=PAGE_LOAD_TIMEOUT_MS)
        page.wait_for_function("() => window.sumiSizesFollowed === true")
        yield page
    finally:
        context.close()


def test_another_login_s_interrupt_takes_out_only_their_own_waiting_job(tmp_path, chromium):
    """Two logins: Bob's Interrupt, pressed while Alice's job runs and his waits behind it, takes his job
    out of the queue; pressed again, it tells him the running job is not his. Alice's job runs to its
    end (A1111 would stop hers)."""
    flags = ["--gradio-auth", f"{ALICE[0]}:{ALICE[1]},{BOB[0]}:{BOB[1]}"]
    with (
        running_server(tmp_path, flags) as server,
        logged_in(chromium, server, ALICE) as alice,
        logged_in(chromium, server, BOB) as bob,
    ):
        sampling, release = threading.Event(), threading.Event()

        def hold_alice_s_job(params) -> None:  # keeps her job at its first step until Bob is done
            sampling.set()
            release.wait(120)

        server.app.callbacks.add("cfg_denoiser", hold_alice_s_job)
        try:
            small_job(alice, "a red circle", steps=3)
            alice.click("#txt2img_generate")
            assert sampling.wait(120)
            running = server.app.queue.current
            assert running is not None and running.owner == ALICE[0]
            small_job(bob, "a blue square", steps=3)
            bob.click("#txt2img_generate")
            wait_text(bob, "#txt2img_progress", "Waiting in queue")  # Bob's job waits; his page shows it
            bob.click("#txt2img_interrupt")
            wait_text(bob, "#txt2img_error", "Interrupted before it started")
            assert server.app.queue.pending() == []  # his job left at once; hers still runs
            assert server.app.queue.current is running
            bob.click("#txt2img_interrupt")  # nothing of his left: he is told whose job runs
            bob.get_by_text("The running job is another user's").first.wait_for()
            assert server.app.queue.current is running
        finally:
            release.set()
            server.app.callbacks.remove_function(hold_alice_s_job)
        info = wait_text(alice, "#html_info_txt2img", "Steps: 3")
        assert "a red circle" in info and not server.app.state.interrupted
        assert "a blue square" not in bob.inner_text("#html_info_txt2img")
