"""Browser tests: Debian's Chromium, driven through Playwright, against real Sumi servers.

Every test in this folder is marked `browser` and skipped when Playwright or Chromium is missing.
One Chromium serves the whole folder (`chromium`), and one plain server (`demo_server`: the demo
model, default settings) serves the tests that change nothing lasting on it; a module that needs its own
files, flags or settings starts its own (tests.app_support.running_server). Pages come from
tests.browser_support.open_page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_support import RunningServer, running_server
from tests.browser_support import browser_skip_reason, launch_chromium

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    reason = browser_skip_reason()
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="package")
def chromium():
    """The system Chromium, headless, for every test in this folder."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def demo_server(tmp_path_factory) -> Iterator[RunningServer]:
    """A server on a fresh data folder with the demo model, shared by the folder's tests that only
    generate and read the page (starting a server and building its UI costs seconds). A test that
    changes settings, files or models the others would see starts its own server instead."""
    with running_server(tmp_path_factory.mktemp("demo-server") / "data") as server:
        yield server


@pytest.fixture
def seen(server, monkeypatch):
    """The prompt texts the module's `server` was asked to count: what Gradio received from the page."""
    texts: list[str] = []
    count_tokens = server.app.text.count_tokens

    def recording(text: str, steps: int = 20, *, negative: bool = False) -> tuple[int, int]:
        texts.append(text)
        return count_tokens(text, steps, negative=negative)

    monkeypatch.setattr(server.app.text, "count_tokens", recording)
    return texts
