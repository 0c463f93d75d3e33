"""Secrets stay in the process: the App's notices and every log record have them masked."""

from __future__ import annotations

import logging

import pytest

from modules.sumi.services.settings.secrets import MASK

PASSWORD = "App-Secret-Pass-8128"


def test_notices_and_log_records_mask_the_passwords(make_app, tmp_path, caplog):
    app = make_app(tmp_path, "--api-auth", f"user:{PASSWORD}", start=False)
    caplog.set_level(logging.INFO)
    app.notice(f"something mentioned {PASSWORD}")
    logging.getLogger("an.extension").warning("flags: %s", f"--api-auth user:{PASSWORD}")
    try:
        raise RuntimeError(f"failed with {PASSWORD}")
    except RuntimeError:
        logging.getLogger("an.extension").exception("boom")
    assert app.notices[-1] == f"something mentioned {MASK}"
    assert PASSWORD not in caplog.text and MASK in caplog.text


def test_log_records_are_not_masked_once_the_app_is_shut_down(make_app, tmp_path, caplog):
    app = make_app(tmp_path, "--ngrok", "Token-After-Shutdown", start=False)
    app.shutdown()
    caplog.set_level(logging.INFO)
    logging.getLogger("x").warning("Token-After-Shutdown")
    assert "Token-After-Shutdown" in caplog.text


def test_a_malformed_api_login_refuses_to_start(make_app, tmp_path):
    with pytest.raises(ValueError, match="--api-auth"):
        make_app(tmp_path, "--api-auth", "no-colon-here", start=False)


def test_webui_stops_with_a_message_for_a_malformed_login(tmp_path):
    import webui

    with pytest.raises(SystemExit, match="--gradio-auth: entry 1 is not user:password") as stopped:
        webui.main(["--data-dir", str(tmp_path), "--gradio-auth", "Not-Shown-Pass"])
    assert "Not-Shown-Pass" not in str(stopped.value)
