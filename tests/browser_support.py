"""Helpers for browser tests: a real Sumi server on a free port, and Debian's Chromium via Playwright.

`running_server(data_dir)` starts the App and the same FastAPI + Gradio server `webui.py` builds, in
a background thread, and stops both afterwards. `launch_chromium(playwright)` opens the system
Chromium. `browser_skip_reason()` says why browser tests cannot run here (None when they can).
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningServer:
    url: str
    app: Any
    data_dir: Path


def _wait_until_up(url: str, thread: threading.Thread, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the Sumi test server stopped while starting")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the Sumi test server did not answer at {url} within {timeout:.0f}s")


@contextlib.contextmanager
def running_server(data_dir: Path, extra_args: list[str] | None = None) -> Iterator[RunningServer]:
    """A Sumi server (demo model unless `data_dir` holds checkpoints) on 127.0.0.1:<free port>."""
    import uvicorn

    from tests.app_support import app_factory
    from webui import build_server

    with app_factory() as make_app:
        app = make_app(Path(data_dir), *(extra_args or []))
        port = free_port()
        config = uvicorn.Config(build_server(app), host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="sumi-test-server", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, thread)
            yield RunningServer(url, app, Path(data_dir))
        finally:
            server.should_exit = True
            thread.join(timeout=15)
