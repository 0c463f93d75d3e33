"""Sumi: start the web UI and/or the A1111 HTTP API.

python webui.py                 # web UI on http://127.0.0.1:7860
python webui.py --api           # web UI plus /sdapi/v1/... on the same port
python webui.py --nowebui       # API only, on port 7861

Restart ("Apply and restart UI" in the Extensions tab): `App.request_restart()` asks the uvicorn
server to stop; `main` then shuts the App down (the job queue finishes) and replaces the process with
a fresh run of the same command line (`os.execv`, so the PID, the terminal and a supervisor such as
systemd or docker stay the same). Everything is loaded again: extensions, their preload.py flags,
settings. A flag that only a now-disabled extension understood is ignored with a notice after a
restart instead of stopping the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

# Nothing may reach a model hub: configs and the tokenizer ship with Sumi.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parent
RESTARTED_ENV = "SUMI_RESTARTED"  # set for the process that a restart starts
SHUTDOWN_GRACE_S = 3  # open connections (the page's event streams) get this long before a restart

log = logging.getLogger("sumi")


def preload_extensions(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Enabled extensions' preload.py add their flags to `parser`; one message per failure."""
    from modules.sumi.app import preload_extensions as preload

    return preload(parser, argv, REPO_ROOT)


def parse_args(argv: list[str], *, lenient: bool = False) -> tuple[argparse.Namespace, list[str]]:
    """The flags as `main` reads them: Sumi's, plus those extensions add in preload.py.

    Returns (args, notes for the user). With `lenient` (after a restart) unknown flags are reported
    in the notes instead of stopping: they may belong to an extension that was just disabled."""
    from modules.sumi.services.settings.flags import build_parser

    parser = build_parser()
    notes = preload_extensions(parser, argv)
    if not lenient:
        return parser.parse_args(argv), notes
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        notes.append(
            "Ignored unknown command-line arguments after the restart (an extension that was disabled "
            f"or removed may have added them): {' '.join(unknown)}"
        )
    return args, notes


def build_server(app):
    """The FastAPI application serving the UI at / and, when asked, the API at /sdapi/v1.

    Extensions take part as in A1111: `on_before_ui` runs first, `on_ui_settings` options are
    registered (for the Settings tab and /sdapi/v1/options alike), and `on_app_started(demo, app)`
    runs last, so routes that extensions add are served (before the UI's catch-all mount). Then the
    one gate (`AccessGuard`: Host header, CORS, login) goes in front of everything, extensions'
    routes and middleware included."""
    from fastapi import FastAPI

    from modules.sumi.frontends.http import internal
    from modules.sumi.frontends.http import sdapi as api
    from modules.sumi.frontends.http.compression import compress_responses
    from modules.sumi.frontends.http.guard import AccessGuard

    timer = app.startup_timer
    server = FastAPI(title="Sumi", docs_url="/docs", redoc_url="/redoc")

    internal.mount(server, app)  # A1111's /internal/ping, /internal/progress, /internal/pending-tasks
    app.callbacks.call("before_ui")
    app.settings.add_extension_options()
    demo = started = None
    api.protect(server, app)
    if app.args.api or app.args.nowebui:
        api.mount(server, app)
    timer.record("add APIs")
    if not app.args.nowebui:
        import gradio as gr

        from modules.sumi.frontends.gradio import asset_patches, build_ui, gradio3_compat, page_head
        from modules.sumi.frontends.gradio.login import drop_cors, mount_gradio3_session_routes

        timer.record("import gradio")
        with timer.subcategory("create ui"):
            demo = build_ui(app)
        app.demo = demo  # A1111's shared.demo
        from modules.sumi.frontends.http import files

        files.mount(server, app)  # A1111's /file=PATH for extensions' page scripts (the allow-list only)
        logins = list(app.credentials.ui.items())
        # run_history off: its routes reach the Hugging Face hub (no network use behind the user's back)
        server = gr.mount_gradio_app(server, demo, path="/", auth=logins or None, run_history=False)
        drop_cors(_ui_app(server))
        mount_gradio3_session_routes(server, _ui_app(server))  # A1111's clients ask /user at the root
        page_head.install(_ui_app(server), app)  # A1111's scripts in the page <head>, before DOMContentLoaded
        asset_patches.install(_ui_app(server))  # Gradio 3's page behaviour where extensions rely on it
        started = gradio3_compat.blocks_view(demo)  # Gradio 3's `demo.dependencies` and `demo.fns`
        timer.record("mount the page")
    with timer.subcategory("app_started_callback"):
        app.callbacks.call_timed("app_started", lambda s: timer.record(app.script_label(s)), started, server)
    _mounts_last(server)
    server.add_middleware(AccessGuard, policy=_access_policy(app, server))
    compress_responses(server)  # outermost: what the gate answers is compressed too
    app.startup_record = timer.dump()  # A1111's timer.startup_record (/internal/profile-startup)
    return server


def _access_policy(app, server: Any):
    """What the gate checks: the logins, the host names and CORS origins from the flags, and what the
    web UI's login needs (its session cookie, the login page and its files)."""
    from modules.sumi.frontends.http.guard import AccessPolicy
    from modules.sumi.services.settings.flags import allowed_hosts, cors_origins

    origins, regex = cors_origins(app.args)
    policy = AccessPolicy(app.credentials, allowed_hosts(app.args), origins, regex)
    ui = _ui_app(server)
    if ui is None or not app.credentials.ui:
        return policy
    from dataclasses import replace

    from modules.sumi.frontends.gradio.login import is_login_page_path, session_checker

    return replace(
        policy, session_user=session_checker(ui), public=is_login_page_path, ui_path=_ui_path_test(server)
    )


def _ui_app(server: Any) -> Any:
    """The web UI's (Gradio's) app, mounted at "/", or None."""
    from starlette.routing import Mount

    mounts = [r for r in server.router.routes if isinstance(r, Mount) and r.path in ("", "/")]
    return mounts[-1].app if mounts else None


def _ui_path_test(server: Any):
    """`is_ui(path)`: no route but the web UI's catch-all mount serves `path`, or it is the UI's
    `/file=` route (the page's own files: a refusal there must not raise the browser's Basic prompt)."""
    from starlette.routing import Match, Mount

    from modules.sumi.frontends.http.files import is_file_route
    from modules.sumi.frontends.http.internal import is_internal_route

    def is_ui(path: str) -> bool:
        if is_file_route(path) or is_internal_route(path):
            return True
        scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        others = [r for r in server.router.routes if not (isinstance(r, Mount) and r.path in ("", "/"))]
        return all(route.matches(scope)[0] == Match.NONE for route in others)

    return is_ui


def _mounts_last(server: Any) -> None:
    """Routes that extensions add in `on_app_started` come after the UI's mount at "/", which would
    answer them all; move the catch-all mounts behind every other route."""
    from starlette.routing import Mount

    routes = server.router.routes
    catch_all = [r for r in routes if isinstance(r, Mount) and r.path in ("", "/")]
    routes[:] = [r for r in routes if r not in catch_all] + catch_all


def _end_ui_streams(server: Any) -> None:
    """End the pages' open heartbeat streams so the server can stop at once (what gradio's own
    `close()` does); otherwise uvicorn waits SHUTDOWN_GRACE_S for them and cancels them noisily."""
    for route in getattr(server.router, "routes", []):
        stop_event = getattr(getattr(route, "app", None), "stop_event", None)
        if stop_event is not None:
            stop_event.set()


def restart_command() -> list[str]:
    """The command line that started this process (interpreter options included)."""
    return [sys.executable, *sys.orig_argv[1:]]


def _restart_process() -> None:
    command = restart_command()
    print("Restarting Sumi: " + " ".join(command), flush=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[RESTARTED_ENV] = "1"
    os.execv(command[0], command)


def server_config(server: Any, args: argparse.Namespace, host: str, port: int) -> Any:
    """uvicorn's settings for the server: the host and port, a grace period at shutdown, and
    --timeout-keep-alive (A1111's default, 30 s)."""
    import uvicorn

    return uvicorn.Config(
        server,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        timeout_keep_alive=max(1, int(getattr(args, "timeout_keep_alive", None) or 30)),
    )


def log_level(name: str | None) -> tuple[int, str | None]:
    """--loglevel as a logging level (A1111 takes the names), and a note when the name is not one."""
    if not name:
        return logging.INFO, None
    level = logging.getLevelName(name.strip().upper())
    if isinstance(level, int):
        return level, None
    return (
        logging.INFO,
        f"--loglevel {name!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL); INFO is used",
    )


def main(argv: list[str] | None = None) -> None:
    from modules.sumi.util.timer import Timer

    timer = Timer()  # the start-up profile (A1111's startup_timer) from the first line on
    from modules.sumi.util.logs import configure_logging
    from modules.sumi.util.package_guard import guard_optional_packages

    # before transformers/diffusers are imported: a broken optional package (a torchvision an
    # extension installed for another torch) is kept away instead of stopping the start (App names it)
    guard_optional_packages()
    restarted = os.environ.pop(RESTARTED_ENV, None) == "1"
    args, notes = parse_args(sys.argv[1:] if argv is None else argv, lenient=restarted)
    level, level_note = log_level(args.loglevel)
    configure_logging(args.log_file, level)  # a flood of one error costs a few lines, its traceback once
    if level_note:
        notes.append(level_note)
    timer.record("prepare environment")
    from modules import shared
    from modules.sumi.app import App
    from modules.sumi.services.settings.flags import server_host, server_port
    from modules.sumi.services.settings.secrets import Credentials

    try:
        Credentials.from_args(args)  # a malformed login stops the start, with a message, not a traceback
    except ValueError as exc:
        sys.exit(f"Sumi cannot start: {exc}")
    timer.record("import torch and Sumi")
    app = App(args, REPO_ROOT, startup_timer=timer)
    from modules.sumi.frontends.gradio import gradio3_compat
    from modules.sumi.frontends.http import pydantic1_compat

    gradio3_compat.install(app.scripts)  # extension code's `import gradio` gets the Gradio 3 layer
    pydantic1_compat.install(app.scripts)  # and its `import pydantic`, pydantic 1's manners
    for note in notes:
        app.notice(note)
    shared.set_app(app)
    app.startup()
    server = build_server(app)
    print(f"Startup time: {timer.summary()}.", flush=True)
    host, port = server_host(args), server_port(args)

    import uvicorn

    uvicorn_server = uvicorn.Server(server_config(server, args, host, port))

    def stop_for_restart() -> None:
        _end_ui_streams(server)
        uvicorn_server.should_exit = True

    def stop_server(force: bool) -> None:
        _end_ui_streams(server)
        uvicorn_server.should_exit = True
        uvicorn_server.force_exit = force  # server-kill: open connections are not waited for

    app.restart_handler = stop_for_restart
    app.stop_handler = stop_server
    print(f"Sumi is running on http://{host}:{port}", flush=True)
    try:
        uvicorn_server.run()
    finally:
        app.shutdown()
    if app.restart_requested:
        _restart_process()


if __name__ == "__main__":
    main()
