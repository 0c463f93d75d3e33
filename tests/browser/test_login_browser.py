"""Logging in from Chromium: with --gradio-auth the login page (and only what it needs) loads without a
login, and after logging in the whole page works, its own calls included; with only --api-auth the
browser's HTTP Basic login opens the page."""

from __future__ import annotations

from tests.app_support import running_server
from tests.browser_support import PROMPT, TIMEOUT_MS, generate, small_job

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
