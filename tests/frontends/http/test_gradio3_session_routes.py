"""Gradio 3's `/user` and `/login_check` at the server's root, as A1111 served them: clients ask `/user`
to see that the WebUI runs and who is logged in (Gradio 6 moved both under `/gradio_api/`)."""

from __future__ import annotations

import httpx

from tests.app_support import serve

UI = ("uiuser", "Ui-Session-Pass-3141")


def _served(make_app, data_dir, *flags: str):
    from webui import build_server

    app = make_app(data_dir, *flags)
    return serve(app, build_server(app))


def test_without_logins_user_is_null_and_login_check_passes(make_app, tmp_path):
    with _served(make_app, tmp_path) as url:
        for path in ("/user", "/user/", "/login_check"):
            response = httpx.get(url + path, timeout=30)
            assert response.status_code == 200 and response.json() is None, (path, response.text)


def test_with_a_ui_login_user_names_the_session_s_login(make_app, tmp_path):
    with _served(make_app, tmp_path, "--gradio-auth", ":".join(UI)) as url:
        assert httpx.get(url + "/user", timeout=30).status_code == 401  # the gate: no session yet
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/login", data={"username": UI[0], "password": UI[1]}).status_code == 200
            assert client.get("/user").json() == UI[0]
            check = client.get("/login_check")
            assert check.status_code == 200 and check.json() is None
