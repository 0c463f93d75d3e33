"""A1111's `--api-server-stop` routes: POST /sdapi/v1/server-kill, server-restart and server-stop.

They exist only with the flag (A1111 adds them only then), behind the API login like every route.
server-stop ends the server after the reply (the running job is interrupted); server-kill also skips
the grace period for open connections; server-restart runs the same command line again (as the
Extensions tab's "Apply and restart UI"). An App that webui.py did not start (embedded) answers 501,
as A1111 does for a restart it cannot make.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

if TYPE_CHECKING:
    from modules.sumi.app import App

_CANNOT = "this Sumi was not started by webui.py, so it cannot {verb} itself"


def _refused(verb: str) -> Response:
    return JSONResponse({"detail": _CANNOT.format(verb=verb)}, status_code=501)


def add_server_control_routes(router: APIRouter, app: App) -> None:
    """The three routes, when the server was started with --api-server-stop."""
    if not getattr(app.args, "api_server_stop", False):
        return

    @router.post("/server-kill")
    def server_kill() -> Response:
        return PlainTextResponse("Killing.") if app.request_stop(force=True) else _refused("stop")

    @router.post("/server-restart")
    def server_restart() -> Response:
        return PlainTextResponse("Restarting.") if app.request_restart() else _refused("restart")

    @router.post("/server-stop")
    def server_stop() -> Response:
        return PlainTextResponse("Stopping.") if app.request_stop() else _refused("stop")
