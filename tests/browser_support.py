"""Helpers for browser tests: Debian's Chromium via Playwright, and the page actions the tests share.

`launch_chromium(playwright)` opens the system Chromium (tests/browser/conftest.py holds one for all
browser tests); `open_page(browser, url)` a page on the txt2img tab. `browser_skip_reason()` says why
browser tests cannot run here (None when they can). The servers they drive come from
`tests.app_support.running_server`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import time
from collections.abc import Callable
from typing import Any

TIMEOUT_MS = 30_000  # Playwright's default wait in these tests
# The first render of the whole UI is the slowest thing a page does (seconds of script on a busy 2-core
# machine): `open_page` gives it longer than the other waits so load spikes do not fail unrelated tests.
PAGE_LOAD_TIMEOUT_MS = 90_000
PROMPT = "#txt2img_prompt textarea"
NEGATIVE = "#txt2img_neg_prompt textarea"
INFO = "#html_info_txt2img"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browser_skip_reason() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium)"
    return None


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


# -- pages ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_page(
    browser: Any,
    url: str,
    *,
    width: int = 1280,
    height: int = 1000,
    ready: str | None = PROMPT,
    errors: list[str] | None = None,
    timeout_ms: int = TIMEOUT_MS,
):
    """A page of `url` in a fresh browser context (closed afterwards), once `ready` is on the page.

    `errors` collects the page's uncaught script errors from the start."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(timeout_ms)
        if errors is not None:
            page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        if ready:
            page.wait_for_selector(ready, timeout=max(timeout_ms, PAGE_LOAD_TIMEOUT_MS))
        if ready == PROMPT:  # Sumi's page: its size sliders have moved to the model's size (native_size.py)
            page.wait_for_function("() => window.sumiSizesFollowed === true")
        yield page
    finally:
        context.close()


def set_number(page: Any, elem_id: str, value: float) -> None:
    """Type into the number box of a slider or a number field, as a user would."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def small_job(
    page: Any, prompt: str | None = None, *, steps: int = 2, size: int = 64, batch_size: int | None = None
) -> None:
    """Set up a job the demo model makes in a fraction of a second (64x64, 2 steps by default)."""
    if prompt is not None:
        page.fill(PROMPT, prompt)
    numbers = {"txt2img_width": size, "txt2img_height": size, "txt2img_steps": steps}
    if batch_size is not None:
        numbers["txt2img_batch_size"] = batch_size
    for elem_id, value in numbers.items():
        set_number(page, elem_id, value)


def wait_text(page: Any, selector: str, text: str) -> str:
    """Wait until the element's text includes `text`; its text."""
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)", arg=[selector, text]
    )
    return page.inner_text(selector)


def wait_value(page: Any, selector: str, value: str) -> None:
    """Wait until the input's value is `value`."""
    page.wait_for_function("([s, v]) => document.querySelector(s).value === v", arg=[selector, value])


def generate(page: Any, until: str = "Steps: 2") -> str:
    """Press Generate and wait until the infotext shows `until`; the infotext."""
    page.click("#txt2img_generate")
    return wait_text(page, INFO, until)


def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a condition on the server side."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
