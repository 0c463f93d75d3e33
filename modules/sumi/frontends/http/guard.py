"""The one gate in front of every route: the Host header, CORS, and the login.

`webui.build_server` puts `AccessGuard` outermost, after extensions have added their routes and
middleware in `on_app_started`, so no route (the API, `/controlnet`, `/internal`, `/docs`,
`/openapi.json`, extensions' routes, the web UI) and no extension middleware sees a request first.
Per request, in this order:

1. **Host**: the Host header must name a host the server answers to (`AccessPolicy.allowed_hosts`:
   the loopback names by default; None allows any). Otherwise 400, so a DNS-rebinding page cannot
   reach a local install.
2. **CORS**: only when `--cors-allow-origins` / `--cors-allow-origins-regex` are given, Starlette's
   CORS middleware answers preflights and adds the headers for those origins (with credentials).
   Without them no CORS header is ever sent (Gradio's own CORS middleware is removed by webui.py).
3. **Login** (when `--api-auth`, `--gradio-auth` or `--gradio-auth-path` is set): HTTP Basic with
   `Credentials.basic` (the API logins, else the UI logins), or the web UI's login session (a Gradio
   session cookie, when UI logins are set). The login page and the files it loads
   (`AccessPolicy.public`) are open; anything else gets 401 (with `WWW-Authenticate: Basic`, except
   on the UI's own routes when the UI has its login page, so the browser shows that page, not its
   Basic prompt).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modules.sumi.services.settings.secrets import Credentials

REALM = 'Basic realm="Sumi", charset="UTF-8"'


def _never(_method: str, _path: str) -> bool:
    return False


@dataclass(frozen=True)
class AccessPolicy:
    """What the gate checks; webui.py builds it from the flags and the mounted UI.

    `session_user(cookies)`: the user of a web UI login session, or None. `public(method, path)`: the
    login page and its files. `ui_path(path)`: the path is served by the web UI's mount."""

    credentials: Credentials = field(default_factory=Credentials)
    allowed_hosts: frozenset[str] | None = None
    cors_origins: list[str] = field(default_factory=list)
    cors_regex: str | None = None
    session_user: Callable[[Mapping[str, str]], str | None] | None = None
    public: Callable[[str, str], bool] = _never
    ui_path: Callable[[str], bool] = lambda _path: False


def host_name(header: str) -> str:
    """The host of a Host header, lower case, without port or IPv6 brackets ("[::1]:80" -> "::1")."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


def basic_login(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class AccessGuard:
    """ASGI middleware: Host check, then CORS (when configured), then the login (when configured)."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy
        self.inner: ASGIApp = self._login_checked
        if policy.cors_origins or policy.cors_regex:
            self.inner = CORSMiddleware(
                self._login_checked,
                allow_origins=policy.cors_origins,
                allow_origin_regex=policy.cors_regex,
                allow_methods=["*"],
                allow_headers=["*"],
                allow_credentials=True,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        allowed = self.policy.allowed_hosts
        if allowed is not None:
            host = host_name(HTTPConnection(scope).headers.get("host", ""))
            if host not in allowed:
                await _refuse(scope, receive, send, PlainTextResponse("Invalid host header", 400))
                return
        await self.inner(scope, receive, send)

    async def _login_checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allows(scope):
            await self.app(scope, receive, send)
            return
        policy, path = self.policy, scope["path"]
        headers = (
            {} if policy.session_user is not None and policy.ui_path(path) else {"WWW-Authenticate": REALM}
        )
        response = JSONResponse({"detail": "Not authenticated"}, 401, headers=headers)
        await _refuse(scope, receive, send, response)

    def allows(self, scope: Scope) -> bool:
        """True when no login is configured, the request carries a valid one, or the path is public."""
        policy = self.policy
        if not policy.credentials.required:
            return True
        conn = HTTPConnection(scope)
        login = basic_login(conn.headers.get("authorization"))
        if login is not None and policy.credentials.check_basic(*login):
            return True
        if policy.session_user is not None and policy.session_user(conn.cookies) is not None:
            return True
        return policy.public(scope.get("method", "GET"), scope["path"])


async def _refuse(scope: Scope, receive: Receive, send: Send, response: Response) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await response(scope, receive, send)
