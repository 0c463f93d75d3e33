"""What the server's gate (frontends/http/guard.py, wired by webui.py) needs to know of Gradio's login.

With `--gradio-auth` Gradio shows its login page at `/` and, after `POST /login`, keeps a session
token in a cookie. `session_checker(gradio_app)` tells the user of a request's session (so a logged-in
page may call `/internal/*`, `/sdapi/v1/*` and extensions' routes); `is_login_page_path` names what
the login page needs before anyone has logged in: the page, the login form's target, and the static
files it loads. Everything else on the server asks for a login.

`drop_cors(gradio_app)` removes Gradio's own CORS middleware, which approves any
`http://localhost:<port>` origin with credentials when the server is reached as localhost (and any
origin otherwise); Sumi's CORS follows `--cors-allow-origins` / `--cors-allow-origins-regex` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

_PAGE_METHODS = frozenset({"GET", "HEAD"})
_LOGIN_FILES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
_LOGIN_PAGES = frozenset(
    {"/", "/theme.css", "/gradio_api/theme.css", "/favicon.ico", "/manifest.json", "/robots.txt", "/logout"}
)


def is_login_page_path(method: str, path: str) -> bool:
    """True for the login page, its form's target and the files it loads."""
    if method == "POST":
        return path in ("/login", "/login/")
    if method not in _PAGE_METHODS:
        return False
    return path in _LOGIN_PAGES or path.startswith(_LOGIN_FILES)


def session_checker(gradio_app: Any) -> Callable[[Mapping[str, str]], str | None]:
    """`user(cookies)`: the user whose Gradio login session the cookies carry, or None."""

    def user(cookies: Mapping[str, str]) -> str | None:
        cookie_id = gradio_app.cookie_id
        for name in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            token = cookies.get(name)
            if token and token in gradio_app.tokens:
                return gradio_app.tokens[token]
        return None

    return user


def drop_cors(gradio_app: Any) -> None:
    """Take Gradio's CORS middleware off its app (before the server starts)."""
    gradio_app.user_middleware = [
        m for m in gradio_app.user_middleware if "CORS" not in getattr(m.cls, "__name__", "")
    ]


def current_login() -> str | None:
    """The login of the page whose event is being handled: None without logins, or outside an event
    (the job queue reads it to know whose job it queues, an Interrupt to know who pressed it)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    return getattr(request, "username", None) or None


def mount_gradio3_session_routes(server: Any, gradio_app: Any) -> None:
    """Gradio 3's `GET /user` and `GET /login_check` at the server's root, where A1111's clients ask
    them (Gradio 6 answers them under `/gradio_api/`): `/user` is the session's login name or null,
    `/login_check` null once logged in (or without logins), else 401 "Not authenticated"."""
    user = session_checker(gradio_app)

    def current_user(request: Request) -> str | None:
        return user(request.cookies)

    def login_check(request: Request) -> JSONResponse | None:
        if getattr(gradio_app, "auth", None) is None or user(request.cookies) is not None:
            return None
        return JSONResponse({"detail": {"error": "Not authenticated"}}, status_code=401)

    for path in ("/user", "/user/"):
        server.add_api_route(path, current_user, methods=["GET"], include_in_schema=False)
    for path in ("/login_check", "/login_check/"):
        server.add_api_route(path, login_check, methods=["GET"], include_in_schema=False, response_model=None)
