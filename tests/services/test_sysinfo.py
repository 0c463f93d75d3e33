"""The system information report (services.sysinfo, App.sysinfo): A1111's keys, Sumi's device and
models, the last errors, and never a secret: logins given as flags or in COMMANDLINE_ARGS, secret
settings, a token in an extension's git remote."""

from __future__ import annotations

import json
import subprocess
import sys

from modules.sumi.services import sysinfo
from modules.sumi.services.settings.secrets import without_userinfo
from modules.sumi.util import logs

SECRETS = ("pw-flag-1", "pw-flag-2", "key-setting-3", "tok-remote-4")


def _extension_with_a_token_in_its_remote(data_dir) -> None:
    folder = data_dir / "extensions" / "private-ext"
    folder.mkdir(parents=True)
    (folder / "scripts").mkdir()
    (folder / "README.md").write_text("private", encoding="utf-8")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    remote = "https://someone:tok-remote-4@example.invalid/me/private-ext.git"
    subprocess.run([*git, "remote", "add", "origin", remote], check=True)


def test_the_report_shows_no_login_secret_setting_or_remote_token(make_app, tmp_path, monkeypatch):
    logins = ["--api-auth", "alice:pw-flag-1", "--gradio-auth", "bob:pw-flag-2"]
    monkeypatch.setattr(sys, "argv", ["webui.py", *logins])
    monkeypatch.setenv("COMMANDLINE_ARGS", " ".join(logins))
    _extension_with_a_token_in_its_remote(tmp_path)
    app = make_app(tmp_path, *logins, start=False)
    app.options.data["civitai_api_key"] = "key-setting-3"
    text = app.sysinfo()
    assert not [s for s in SECRETS if s in text]
    report = json.loads(text)
    assert "alice:pw-flag-1" not in report["Commandline"] and "--api-auth" in report["Commandline"]
    assert "--gradio-auth" in report["Environment"]["COMMANDLINE_ARGS"]
    assert report["Config"]["civitai_api_key"] == "********"
    (extension,) = [e for e in report["Extensions"] if e["name"] == "private-ext"]
    assert extension["remote"] == "https://example.invalid/me/private-ext.git"
    assert sysinfo.check(text)


def test_the_last_errors_are_in_the_report_newest_first_and_a_repeat_is_kept_once():
    for message in ("first failure", "second failure", "second failure"):
        try:
            raise RuntimeError(message)
        except RuntimeError as exc:
            logs.remember_exception(exc)
    recent = logs.recent_exceptions()
    assert [e["exception"] for e in recent[:2]] == [
        "RuntimeError: second failure",
        "RuntimeError: first failure",
    ]
    assert (
        recent[0]["traceback"][-1][2]
        == "test_the_last_errors_are_in_the_report_newest_first_and_a_repeat_is_kept_once"
    )
    assert len(recent) <= logs.MAX_RECENT_EXCEPTIONS


def test_an_a1111_extension_error_reaches_the_report():
    from modules import errors

    try:
        raise ValueError("an extension broke")
    except ValueError:
        errors.report("Error running an extension", exc_info=True)
    assert logs.recent_exceptions()[0]["exception"] == "ValueError: an extension broke"


def test_the_checksum_catches_any_edit_and_a_report_without_one():
    text = sysinfo.sysinfo_text({"Python": "3.11", "Checksum": sysinfo.CHECKSUM_PLACEHOLDER}, lambda t: t)
    assert sysinfo.check(text)
    assert not sysinfo.check(text.replace("3.11", "3.12"))
    assert not sysinfo.check(text.replace('"Python"', '"python"'))
    assert not sysinfo.check('{"Python": "3.11"}')


def test_a_remote_loses_only_its_user_and_token():
    assert without_userinfo("https://u:t@github.com/a/b.git") == "https://github.com/a/b.git"
    assert without_userinfo("https://github.com/a/b") == "https://github.com/a/b"
    assert without_userinfo("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert without_userinfo(None) is None
