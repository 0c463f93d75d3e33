"""Real Apps on temporary data folders (with the tiny demo checkpoint), servers, and API request helpers.

Tests get Apps from the `make_app` / `make_module_app` fixtures (tests/conftest.py), which are
`AppFactory` objects: every App they build becomes `modules.shared`'s App, and on teardown each is
shut down and the App that was there before is put back, whatever the test did. `serve(app)` runs the
server `webui.py` builds for an App on a free port in a thread; `running_server(data_dir)` does both.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modules import shared
from modules.sumi.app import App
from modules.sumi.frontends.gradio import gradio3_compat
from modules.sumi.frontends.http import pydantic1_compat
from modules.sumi.services.settings.flags import build_parser

REPO_ROOT = Path(__file__).resolve().parent.parent


class AppFactory:
    """`factory(data_dir, *flags)` builds an App as webui.py does and makes it `modules.shared`'s App.

    `start=False` leaves it unstarted (no demo checkpoint, scripts or worker: enough to build the UI);
    `loaded=True` waits until the start-up model load has finished; `fast_path=True` leaves out the
    `--no-half` every other App gets (fp32, whatever the CPU); `preload=True` parses the flags
    as `webui.main` does, with the flags the data folder's extensions add in preload.py (the notes
    become App notices). `close()` shuts every App down, newest first, and restores `shared`.
    """

    def __init__(self) -> None:
        self.previous = shared.running_app()
        self.apps: list[App] = []

    def __call__(
        self,
        data_dir: Path | str,
        *flags: str,
        start: bool = True,
        loaded: bool = False,
        preload: bool = False,
        fast_path: bool = False,
    ) -> App:
        # Tests compare images with fp32 references: --no-half unless a test asks for the fast path
        # (the CPU bf16 default; contract 6 of issue 14).
        fp32 = [] if fast_path or "--no-half" in flags else ["--no-half"]
        argv = ["--data-dir", str(data_dir), *fp32, *flags]
        if preload:
            import webui

            args, notes = webui.parse_args(argv)
        else:
            args, notes = build_parser().parse_args(argv), []
        app = App(args, REPO_ROOT)
        gradio3_compat.install(app.scripts)  # as webui.main does
        pydantic1_compat.install(app.scripts)
        for note in notes:
            app.notice(note)
        self.apps.append(app)
        shared.set_app(app)
        if start:
            app.startup()
            if loaded:
                app.queue.run("wait for the start-up load", lambda: None)
        return app

    def close(self) -> None:
        apps, self.apps = self.apps[::-1], []
        errors = []
        for app in apps:
            try:
                app.shutdown()
            except Exception as exc:  # the others are shut down all the same
                errors.append(exc)
        shared.set_app(self.previous)
        if errors:
            raise errors[0]


@contextlib.contextmanager
def app_factory() -> Iterator[AppFactory]:
    """An AppFactory for a `with` block (the fixtures' teardown, or code outside pytest fixtures)."""
    factory = AppFactory()
    try:
        yield factory
    finally:
        factory.close()


# -- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, alive: Callable[[], bool], timeout: float = 90.0) -> dict:
    """Poll the server's /internal/ping until it answers (its JSON: the boot id) or `alive()` is False."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the Sumi server for {url} stopped while starting")
        try:
            with urllib.request.urlopen(url + "/internal/ping", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, with a login configured
                return {}
            time.sleep(0.2)
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the Sumi server did not answer at {url} within {timeout:.0f}s")


@contextlib.contextmanager
def serve(app: App, server=None) -> Iterator[str]:
    """The FastAPI + Gradio server `webui.py` builds for a started App (or `server`, built already), on
    127.0.0.1:<free port> in a thread; its URL. Stopped afterwards (the App is its factory's to shut down)."""
    import uvicorn

    from webui import build_server

    port = free_port()
    server = build_server(app) if server is None else server
    config = uvicorn.Config(server, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="sumi-test-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, thread.is_alive)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@dataclass
class RunningServer:
    url: str
    app: App
    data_dir: Path


@contextlib.contextmanager
def running_server(
    data_dir: Path, extra_args: list[str] | None = None, fast_path: bool = False
) -> Iterator[RunningServer]:
    """A started App (demo model unless `data_dir` holds checkpoints) and its server; both stopped after.
    fp32 (`--no-half`) unless `fast_path`."""
    with app_factory() as make_app:
        app = make_app(Path(data_dir), *(extra_args or []), fast_path=fast_path)
        with serve(app) as url:
            yield RunningServer(url, app, Path(data_dir))


# -- API requests ---------------------------------------------------------------------------------------

# The Host a TestClient sends: the server answers only to the names it serves (loopback by default),
# and TestClient's own default, "testserver", is not one of them.
LOCAL_URL = "http://127.0.0.1"


def local_client(server, auth: tuple[str, str] | None = None, **kwargs):
    """A TestClient on `server` (e.g. `webui.build_server(app)`) that reaches it as 127.0.0.1, sending
    `auth` as HTTP Basic with every request."""
    from fastapi.testclient import TestClient

    client = TestClient(server, base_url=LOCAL_URL, **kwargs)
    if auth is not None:
        client.auth = auth
    return client


def generate(client, body: dict, prompt: str) -> tuple[bytes, dict]:
    """POST a txt2img request through a TestClient; (pixels of the first image, parsed `info`)."""
    import base64
    import io
    import json

    from PIL import Image

    r = client.post("/sdapi/v1/txt2img", json={**body, "prompt": prompt})
    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["images"][0])))
    return image.tobytes(), json.loads(r.json()["info"])


def post_txt2img(client, body: dict, status: int = 200) -> dict:
    """POST /sdapi/v1/txt2img and check the status; the parsed JSON body."""
    response = client.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == status, response.text
    return response.json()


def encode_png(image) -> str:
    """A PIL image as the base64 PNG the API takes (init_images, mask, ControlNet images)."""
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode_pixels(data: str):
    """A base64 image from an API response as an RGB uint8 array."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


# -- routes ---------------------------------------------------------------------------------------------


def mounted_routes(server) -> list[tuple[str, str]]:
    """(method, path template) of every route the server serves: its own, the included routers', those
    extensions added, and those of mounted apps (the web UI at "/"), in the order they are matched."""
    from starlette.routing import Mount

    found: list[tuple[str, str]] = []

    def walk(routes, prefix: str) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # FastAPI's included router
                walk(route.effective_candidates(), prefix)
            elif isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            else:
                methods = getattr(getattr(route, "original_route", route), "methods", None) or {"GET"}
                found.extend((method, prefix + route.path) for method in sorted(methods))

    walk(server.router.routes, "")
    return list(dict.fromkeys(found))


def concrete_path(template: str) -> str:
    """A path that a route template matches: every `{param}` / `{param:path}` filled with "x"."""
    import re

    return re.sub(r"\{[^}]+\}", "x", template)


def with_random_weight_model(data_dir: Path | str) -> Path:
    """Put the random-weight SD1 model (engine.tiny_models.demo_sd1) in `data_dir`'s checkpoint folder, so
    the App uses it instead of installing the trained demo: for tests whose measurements need pictures
    with texture everywhere (noise-like images: seams, face detection, colour statistics)."""
    from modules.sumi.engine.tiny_models import demo_sd1, write_checkpoint

    folder = Path(data_dir) / "models" / "Stable-diffusion"
    folder.mkdir(parents=True, exist_ok=True)
    return write_checkpoint(folder / "random-weights.safetensors", demo_sd1(0))
