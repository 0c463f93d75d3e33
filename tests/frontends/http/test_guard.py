"""The gate in front of every route: Host header, CORS as the flags say (never Gradio's), one login check
that extensions' middleware cannot get in front of."""

from __future__ import annotations

import base64

import pytest
from fastapi import WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

import modules.script_callbacks as script_callbacks
from modules.sumi.frontends.http.guard import basic_login, host_name
from webui import build_server

SAMPLERS = "/sdapi/v1/samplers"


def server_for(make_app, tmp_path, *flags: str):
    return build_server(make_app(tmp_path, *flags, start=False))


def status_for_host(server, host: str, path: str = SAMPLERS) -> int:
    return TestClient(server).get(path, headers={"host": host}).status_code


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:7861", "[::1]:7860", "LOCALHOST"])
def test_loopback_names_are_served_by_default(make_app, tmp_path, host):
    assert status_for_host(server_for(make_app, tmp_path, "--nowebui"), host) == 200


def test_another_host_name_gets_400_as_a_rebinding_page_would(make_app, tmp_path):
    server = server_for(make_app, tmp_path, "--api")
    assert status_for_host(server, "attacker.example:7860") == 400
    assert status_for_host(server, "attacker.example", "/") == 400
    assert status_for_host(server, "127.0.0.1.attacker.example") == 400


def test_allowed_hosts_and_server_name_widen_the_names(make_app, tmp_path):
    server = server_for(
        make_app, tmp_path, "--nowebui", "--allowed-hosts", "sumi.lan, studio", "--server-name", "box"
    )
    assert [status_for_host(server, h) for h in ("sumi.lan:7861", "studio", "box", "127.0.0.1")] == [200] * 4
    assert status_for_host(server, "other.lan") == 400


def test_listen_serves_any_host_name(make_app, tmp_path):
    assert (
        status_for_host(server_for(make_app, tmp_path, "--nowebui", "--listen"), "192.168.1.20:7861") == 200
    )


def cors_headers(client, path: str, origin: str) -> dict[str, str]:
    headers = client.get(path, headers={"origin": origin}).headers
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control")}


def test_no_origin_is_approved_without_cors_flags_not_even_localhost(make_app, tmp_path):
    client = TestClient(server_for(make_app, tmp_path, "--api"), base_url="http://localhost:7860")
    for path in ("/", "/config", SAMPLERS):
        assert cors_headers(client, path, "http://localhost:9999") == {}, path
    preflight = client.options(
        SAMPLERS, headers={"origin": "http://localhost:9999", "access-control-request-method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_flags_approve_exactly_their_origins(make_app, tmp_path):
    flags = [
        "--api",
        "--cors-allow-origins",
        "http://app.example",
        "--cors-allow-origins-regex",
        r"https://.*\.trusted\.dev",
    ]
    client = TestClient(server_for(make_app, tmp_path, *flags), base_url="http://127.0.0.1")
    approved = cors_headers(client, SAMPLERS, "http://app.example")
    assert approved["access-control-allow-origin"] == "http://app.example"
    assert approved["access-control-allow-credentials"] == "true"
    assert (
        cors_headers(client, "/config", "https://ui.trusted.dev")["access-control-allow-origin"]
        == "https://ui.trusted.dev"
    )
    assert "access-control-allow-origin" not in cors_headers(client, SAMPLERS, "http://localhost:9999")


def test_a_cors_preflight_is_answered_before_the_login(make_app, tmp_path):
    flags = ["--nowebui", "--api-auth", "u:p", "--cors-allow-origins", "http://app.example"]
    client = TestClient(server_for(make_app, tmp_path, *flags), base_url="http://127.0.0.1")
    preflight = client.options(
        "/sdapi/v1/txt2img",
        headers={"origin": "http://app.example", "access-control-request-method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example"
    assert (
        client.post("/sdapi/v1/txt2img", json={}, headers={"origin": "http://app.example"}).status_code == 401
    )


def test_extension_middleware_cannot_answer_before_the_login(make_app, tmp_path):
    app = make_app(tmp_path, "--nowebui", "--api-auth", "u:p", start=False)

    def add_middleware(_demo, server) -> None:
        @server.middleware("http")
        async def answers_everything(request, call_next):
            from starlette.responses import PlainTextResponse

            return PlainTextResponse("extension")

    script_callbacks.on_app_started(add_middleware)
    client = TestClient(build_server(app), base_url="http://127.0.0.1")
    assert client.get("/anything").status_code == 401
    assert client.get("/anything", auth=("u", "p")).text == "extension"


def test_api_clients_use_basic_auth_as_with_a1111(make_app, tmp_path):
    client = TestClient(
        server_for(make_app, tmp_path, "--nowebui", "--api-auth", "a:1,b:two:colons"),
        base_url="http://127.0.0.1",
    )
    refused = client.get(SAMPLERS)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert client.get(SAMPLERS, auth=("b", "two:colons")).status_code == 200
    assert client.get(SAMPLERS, auth=("a", "two:colons")).status_code == 401


def test_ui_logins_open_the_api_when_no_api_login_is_set(make_app, tmp_path):
    client = TestClient(
        server_for(make_app, tmp_path, "--api", "--gradio-auth", "ui:pw"), base_url="http://127.0.0.1"
    )
    assert client.get(SAMPLERS).status_code == 401
    assert client.get(SAMPLERS, auth=("ui", "pw")).status_code == 200
    assert client.post("/login", data={"username": "ui", "password": "pw"}).status_code == 200
    client.auth = None
    assert client.get("/internal/ping").status_code == 200  # the logged-in page's session is enough


def test_host_names_are_read_without_port_and_brackets():
    assert [host_name(h) for h in ("LocalHost:80", "[::1]:7860", "::1", "example.org")] == [
        "localhost",
        "::1",
        "::1",
        "example.org",
    ]


def test_basic_headers_are_decoded_or_ignored():
    token = base64.b64encode(b"user:pa:ss").decode()
    assert basic_login(f"Basic {token}") == ("user", "pa:ss")
    assert (
        basic_login("Bearer abc") is None and basic_login("Basic !!!") is None and basic_login(None) is None
    )


def test_extension_websockets_ask_for_the_login_too(make_app, tmp_path):

    app = make_app(tmp_path, "--nowebui", "--api-auth", "u:p", start=False)

    def add_socket(_demo, server) -> None:
        @server.websocket("/ext/socket")
        async def socket(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_text("hello")
            await websocket.close()

    script_callbacks.on_app_started(add_socket)
    client = TestClient(build_server(app), base_url="http://127.0.0.1")
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("ws://127.0.0.1/ext/socket") as ws:
        ws.receive_text()
    token = base64.b64encode(b"u:p").decode()
    login = {"authorization": f"Basic {token}"}
    with client.websocket_connect("ws://127.0.0.1/ext/socket", headers=login) as ws:
        assert ws.receive_text() == "hello"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("ws://elsewhere/ext/socket", headers=login),
    ):
        pass
