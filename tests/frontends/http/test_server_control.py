"""A1111's --api-server-stop routes: server-stop, server-kill and server-restart (a real webui.py
stopping itself is tested in tests/browser/test_extension_browser.py, after its restart)."""

from __future__ import annotations

import threading

import pytest

from tests.app_support import local_client
from webui import build_server

ROUTES = ("/sdapi/v1/server-stop", "/sdapi/v1/server-kill", "/sdapi/v1/server-restart")


def test_the_routes_exist_only_with_the_flag(tmp_path, make_app):
    client = local_client(build_server(make_app(tmp_path, "--nowebui")))
    assert [client.post(route).status_code for route in ROUTES] == [404, 404, 404]


def test_an_app_webui_py_did_not_start_says_it_cannot_stop_itself(tmp_path, make_app):
    client = local_client(build_server(make_app(tmp_path, "--nowebui", "--api-server-stop")))
    for route in ROUTES:
        reply = client.post(route)
        assert reply.status_code == 501 and "not started by webui.py" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("route", "force"), [("/sdapi/v1/server-stop", False), ("/sdapi/v1/server-kill", True)]
)
def test_stop_and_kill_reply_then_interrupt_the_job_and_stop_the_server(tmp_path, make_app, route, force):
    app = make_app(tmp_path, "--nowebui", "--api-server-stop")
    asked = threading.Event()
    forced: list[bool] = []
    app.stop_handler = lambda f: (forced.append(f), asked.set())
    client = local_client(build_server(app))
    reply = client.post(route)
    assert reply.status_code == 200 and reply.text in ("Stopping.", "Killing.")
    assert asked.wait(10) and forced == [force]
    assert app.state.interrupted  # a running job ends


def test_restart_uses_the_restart_of_webui_py(tmp_path, make_app):
    app = make_app(tmp_path, "--nowebui", "--api-server-stop")
    asked = threading.Event()
    app.restart_handler = asked.set
    reply = local_client(build_server(app)).post("/sdapi/v1/server-restart")
    assert reply.status_code == 200 and asked.wait(10) and app.restart_requested


def test_the_routes_need_the_api_login(tmp_path, make_app):
    app = make_app(tmp_path, "--nowebui", "--api-server-stop", "--api-auth", "user:secret")
    stopped: list[bool] = []
    app.stop_handler = stopped.append
    client = local_client(build_server(app))
    assert [client.post(route).status_code for route in ROUTES] == [401, 401, 401]
    assert stopped == [] and not app.restart_requested
