"""Which flags and settings are secrets, how logins are read, and how secrets are masked in text."""

from __future__ import annotations

import argparse

import pytest

from modules.sumi.services.settings.secrets import (
    MASK,
    Credentials,
    Redactor,
    is_secret_name,
    redacted_flags,
    redacted_options,
    without_masked,
)


@pytest.mark.parametrize(
    "name",
    [
        "api_auth",
        "gradio_auth",
        "gradio_auth_path",
        "ngrok",
        "civitai_api_key",
        "hf_token",
        "openai_apikey",
        "db_password",
    ],
)
def test_names_of_passwords_tokens_and_keys_are_secret(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["token_merging_ratio", "tls_keyfile", "api", "no_gradio_queue", "sd_model_checkpoint", "authorname"],
)
def test_ordinary_names_are_not_secret(name):
    assert not is_secret_name(name)


def test_set_secret_flags_read_as_a_mask_and_unset_ones_stay():
    shown = redacted_flags({"api_auth": "u:p", "gradio_auth": None, "ngrok": "", "port": 7860})
    assert shown == {"api_auth": MASK, "gradio_auth": None, "ngrok": "", "port": 7860}


def test_a_masked_secret_setting_sent_back_is_dropped_and_a_new_one_kept():
    assert redacted_options({"civitai_api_key": "k", "samples_format": "png"})["civitai_api_key"] == MASK
    assert without_masked({"civitai_api_key": MASK, "samples_format": MASK}) == {"samples_format": MASK}
    assert without_masked({"civitai_api_key": "new"}) == {"civitai_api_key": "new"}


def args(**values) -> argparse.Namespace:
    return argparse.Namespace(**{"api_auth": None, "gradio_auth": None, "gradio_auth_path": None, **values})


def test_logins_come_from_the_flags_and_the_login_file(tmp_path):
    path = tmp_path / "logins.txt"
    path.write_text("f1:one, f2:two\n\nf3:th:ree\n", encoding="utf-8")
    creds = Credentials.from_args(args(api_auth="a:1", gradio_auth=" g:2 ,", gradio_auth_path=str(path)))
    assert dict(creds.api) == {"a": "1"}
    assert dict(creds.ui) == {"g": "2", "f1": "one", "f2": "two", "f3": "th:ree"}
    assert creds.required and creds.basic == creds.api
    assert creds.check_basic("a", "1") and not creds.check_basic("a", "2") and not creds.check_basic("g", "2")


def test_ui_logins_are_the_basic_logins_without_api_logins():
    creds = Credentials.from_args(args(gradio_auth="g:2"))
    assert creds.check_basic("g", "2") and not Credentials.from_args(args()).required


@pytest.mark.parametrize("flag", ["api_auth", "gradio_auth"])
def test_a_malformed_login_stops_the_start_without_showing_it(flag):
    with pytest.raises(ValueError, match="entry 2 is not user:password") as failed:
        Credentials.from_args(args(**{flag: "u:p,secretnocolon"}))
    assert "secretnocolon" not in str(failed.value)


def test_an_unreadable_login_file_stops_the_start(tmp_path):
    with pytest.raises(ValueError, match="--gradio-auth-path"):
        Credentials.from_args(args(gradio_auth_path=str(tmp_path / "missing.txt")))


def test_redactor_masks_every_secret_value_in_text():
    redact = Redactor(lambda: ["pass", "user:pass"], lambda: ["", "tok"])
    assert redact("login user:pass and tok, pass") == f"login {MASK} and {MASK}, {MASK}"


def test_infotexts_leave_out_parameters_named_as_secrets():
    from modules.sumi.services.jobs.infotext import build_infotext

    params = {"Steps": 2, "API key": "k-123", "Civitai token": "t-456", "Token merging ratio": 0.5}
    assert build_infotext("a cat", "", params) == "a cat\nSteps: 2, Token merging ratio: 0.5"
