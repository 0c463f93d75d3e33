"""The auth walk: every mounted route (Sumi's, the web UI's, /docs, /openapi.json, /internal, and routes an
extension adds in on_app_started, one of them under /sdapi/v1) asked with no login, a wrong one and the
right one, on a real server, for each way a login can be configured."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

import modules.script_callbacks as script_callbacks
from modules.sumi.frontends.gradio.login import is_login_page_path
from tests.app_support import concrete_path, mounted_routes, serve

API, UI = ("apiuser", "Api-Walk-Pass-2718"), ("uiuser", "Ui-Walk-Pass-1618")
WRONG = ("apiuser", "not-the-password")
EXTENSION_ROUTES = [("GET", "/sdapi/v1/walk-extension"), ("POST", "/walk-extension/echo")]
CONFIGS = {
    "api and ui logins": ["--api-auth", ":".join(API), "--gradio-auth", ":".join(UI)],
    "api login only": ["--api-auth", ":".join(API)],
    "ui login only": ["--gradio-auth", ":".join(UI)],
}


def add_extension_routes(_demo, server) -> None:
    """What an extension does in on_app_started: routes of its own, even under /sdapi/v1."""

    @server.get("/sdapi/v1/walk-extension")
    def extension_get() -> dict:
        return {"ok": True}

    @server.post("/walk-extension/echo")
    def extension_post(body: dict) -> dict:
        return body


@contextlib.contextmanager
def walked_server(make_app, data_dir, flags: list[str]) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    app = make_app(data_dir, "--api", *flags)
    script_callbacks.on_app_started(add_extension_routes)
    from webui import build_server

    server = build_server(app)
    with serve(app, server) as url:
        yield url, mounted_routes(server)


def request(client: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response:
    """Only the status and headers: event streams never end, so the body is not read."""
    if method == "POST":
        kwargs.setdefault("content", b"{")  # a body no route accepts: nothing runs, the login is what counts
        kwargs.setdefault("headers", {})["content-type"] = "application/json"
    with client.stream(method, concrete_path(path), **kwargs) as response:
        return response


def logged_in_client(url: str, basic: tuple[str, str], ui_login: bool) -> httpx.Client:
    client = httpx.Client(base_url=url, auth=basic, timeout=30)
    if ui_login:  # the web UI's own login: its session cookie
        r = client.post("/login", data={"username": UI[0], "password": UI[1]})
        assert r.status_code == 200, r.text
    return client


def walk_order(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Logging out ends the session the walk uses, so it goes last."""
    return sorted(routes, key=lambda route: route[1].rstrip("/") == "/logout")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_route_asks_for_a_login_and_accepts_the_right_one(config, make_app, tmp_path):
    flags = CONFIGS[config]
    ui_login = "--gradio-auth" in flags
    basic = API if "--api-auth" in flags else UI
    with walked_server(make_app, tmp_path, flags) as (url, routes):
        assert set(EXTENSION_ROUTES) <= set(routes)
        assert {("GET", p) for p in ("/openapi.json", "/docs", "/redoc", "/internal/ping")} <= set(routes)
        refused_wrongly, let_in, challenge_missing = [], [], []
        anonymous = httpx.Client(base_url=url, timeout=30)
        wrong = httpx.Client(
            base_url=url, auth=WRONG, cookies={"access-token-unsecure-x": "forged"}, timeout=30
        )
        right = logged_in_client(url, basic, ui_login)
        for method, path in walk_order(routes):
            open_login_page = ui_login and is_login_page_path(method, path)
            for client in (anonymous, wrong):
                response = request(client, method, path)
                if response.status_code != 401 and not open_login_page:
                    let_in.append((method, path, response.status_code))
                if (
                    response.status_code == 401
                    and not ui_login
                    and "www-authenticate" not in response.headers
                ):
                    challenge_missing.append((method, path))
            response = request(right, method, path)
            if response.status_code == 401:
                refused_wrongly.append((method, path))
        assert let_in == [], f"answered without a login ({config})"
        assert refused_wrongly == [], f"refused the right login ({config})"
        assert challenge_missing == []
        assert len(routes) > 100


def test_the_ui_page_without_a_session_is_the_login_page(make_app, tmp_path):
    with walked_server(make_app, tmp_path, CONFIGS["api and ui logins"]) as (url, _):
        page = httpx.get(url + "/", timeout=30)
        assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
        assert "txt2img_prompt" not in page.text
        assert httpx.get(url + "/config", timeout=30).status_code == 401
