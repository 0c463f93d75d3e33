"""Secrets never leave the process: with every kind of login and secret configured, no GET route's
answer (body or headers; Sumi's API, /controlnet, /internal, the docs, the web UI's page and config,
extensions' routes) holds any of them, and neither does the log."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from modules.sumi.services.settings.secrets import MASK
from tests.app_support import concrete_path, local_client, mounted_routes, serve

API_PASS, UI_PASS, FILE_PASS = "Api-Scan-Pass-2718", "Ui-Scan-Pass-1618", "File-Scan-Pass-1414"
NGROK_TOKEN, OPTION_KEY = "Ngrok-Scan-Token-5772", "Option-Scan-Key-4669"
SECRETS = (API_PASS, UI_PASS, FILE_PASS, NGROK_TOKEN, OPTION_KEY)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secrets")
    (folder / "logins.txt").write_text(f"fileuser:{FILE_PASS}\n", encoding="utf-8")
    # a setting an extension keeps its API key in (config.json keeps keys no option claimed yet)
    (folder / "config.json").write_text(json.dumps({"civitai_api_key": OPTION_KEY}), encoding="utf-8")
    return folder


def flags(data_dir) -> list[str]:
    return [
        "--api",
        "--api-auth", f"apiuser:{API_PASS}",
        "--gradio-auth", f"uiuser:{UI_PASS}",
        "--gradio-auth-path", str(data_dir / "logins.txt"),
        "--ngrok", NGROK_TOKEN,
    ]  # fmt: skip


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_no_get_route_returns_a_secret(make_app, data_dir, caplog):
    caplog.set_level(logging.INFO)
    app = make_app(data_dir, *flags(data_dir))
    from webui import build_server

    server = build_server(app)
    found, scanned, streams = [], [], []
    with serve(app, server) as url:
        client = httpx.Client(base_url=url, auth=("apiuser", API_PASS), timeout=60)
        assert client.post("/login", data={"username": "fileuser", "password": FILE_PASS}).status_code == 200
        routes = [path for method, path in mounted_routes(server) if method == "GET" and "logout" not in path]
        for path in routes:
            with client.stream("GET", concrete_path(path)) as response:
                assert response.status_code != 401, path
                if response.headers.get("content-type", "").startswith("text/event-stream"):
                    streams.append(path)  # events of jobs only; a stream never ends
                    continue
                text = response.read().decode("utf-8", errors="replace") + str(response.headers)
            scanned.append(path)
            found += [(path, secret) for secret in leaks(text)]
    assert found == []
    assert {
        "/sdapi/v1/cmd-flags", "/sdapi/v1/options", "/config", "/", "/controlnet/settings", "/sdapi/v1/face-restorers",
        "/internal/sysinfo", "/sdapi/v1/extensions",
    } <= set(scanned)  # fmt: skip
    assert len(scanned) > 50 and len(streams) <= 4
    assert leaks(caplog.text) == []


def test_cmd_flags_and_options_show_secrets_masked(make_app, data_dir):
    app = make_app(data_dir, *flags(data_dir), start=False)
    from webui import build_server

    client = local_client(build_server(app), auth=("apiuser", API_PASS))
    cmd_flags = client.get("/sdapi/v1/cmd-flags").json()
    assert cmd_flags["api_auth"] == cmd_flags["gradio_auth"] == cmd_flags["ngrok"] == MASK
    assert cmd_flags["api"] is True and cmd_flags["nowebui"] is False
    assert client.get("/sdapi/v1/options").json()["civitai_api_key"] == MASK


def test_options_posted_back_as_read_keep_the_secret(make_app, data_dir):
    app = make_app(data_dir, *flags(data_dir), start=False)
    from webui import build_server

    client = local_client(build_server(app), auth=("apiuser", API_PASS))
    options = client.get("/sdapi/v1/options").json()
    assert (
        client.post("/sdapi/v1/options", json={"civitai_api_key": options["civitai_api_key"]}).status_code
        == 200
    )
    assert app.options.as_dict()["civitai_api_key"] == OPTION_KEY


def test_error_messages_mask_secrets(make_app, data_dir):
    app = make_app(data_dir, *flags(data_dir), start=False)
    from webui import build_server

    client = local_client(build_server(app), auth=("apiuser", API_PASS))
    failed = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": f"model {NGROK_TOKEN}"})
    assert failed.status_code in (400, 404) and NGROK_TOKEN not in failed.text and MASK in failed.text
