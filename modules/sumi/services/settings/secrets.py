"""Secrets: the logins Sumi is started with, and keeping them (and any other secret) inside the process.

`Credentials.from_args(args)` reads A1111's login flags: `--api-auth "u1:p1,u2:p2"` (HTTP Basic for
the API), `--gradio-auth "u:p,..."` and the file `--gradio-auth-path` names (one or more "u:p" per
line, comma separated; the web UI's login). A malformed entry stops the start: failing open would
leave the server without the login the user asked for.

A flag or setting holds a secret when its name says so (`is_secret_name`: auth, password, token,
secret, api key, credential, ngrok). `redacted_flags` and `redacted_options` are what Sumi shows of
flags and settings (cmd-flags, /options, the Settings tab, the page's `opts`): each secret that is
set becomes `MASK`. `without_masked` drops a `MASK` sent back for a secret setting, so a client that
reads the options and posts them back does not overwrite the secret. `Redactor` replaces the secret
values themselves in any text (notices, error messages, log records: `install_log_redaction`).
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MASK = "********"

# A flag's dest or an option's key that names a secret: these words anywhere ("gradio_auth_path",
# "civitai_api_key"), "token" only as the last word ("hf_token", not "token_merging_ratio").
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:auth|password|passwd|passphrase|secret|secrets|credential|credentials|api_?key|apikey|"
    r"private_key|ngrok)(?:_|$)|(?:^|_)(?:token|tokens)$",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for a flag dest or setting key that holds a password, token or key."""
    return bool(_SECRET_NAME.search(name))


def _is_set(value: Any) -> bool:
    return value is not None and value is not False and value != "" and value != []


def redacted_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The flags as Sumi shows them: every secret flag that is set reads MASK."""
    return {k: MASK if is_secret_name(k) and _is_set(v) else v for k, v in flags.items()}


def redacted_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as Sumi shows them: every secret setting that holds a value reads MASK."""
    return {k: MASK if is_secret_name(k) and _is_set(v) else v for k, v in options.items()}


def without_masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` less the secret settings sent back as MASK (they keep what they hold)."""
    return {k: v for k, v in values.items() if not (is_secret_name(k) and v == MASK)}


def without_userinfo(url: str | None) -> str | None:
    """A git remote as it may be shown: "https://user:token@host/x" reads "https://host/x"."""
    if not url or "@" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url  # scp-like "git@host:x": a user name, no secret
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# -- logins -------------------------------------------------------------------------------------------


def parse_logins(text: str, flag: str) -> dict[str, str]:
    """{user: password} from "u1:p1,u2:p2" (A1111's format; spaces around entries ignored).

    ValueError names the flag and the entry's position, never its text."""
    users: dict[str, str] = {}
    for number, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        user, colon, password = entry.partition(":")
        if not colon or not user or not password:
            raise ValueError(f"{flag}: entry {number} is not user:password")
        users[user] = password
    return users


def _read_login_file(path: str) -> dict[str, str]:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"--gradio-auth-path: cannot read {path}: {exc.strerror or exc}") from None
    users: dict[str, str] = {}
    for line in text.splitlines():
        users.update(parse_logins(line, "--gradio-auth-path"))
    return users


@dataclass(frozen=True)
class Credentials:
    """The logins: `api` from --api-auth, `ui` from --gradio-auth and --gradio-auth-path."""

    api: Mapping[str, str] = field(default_factory=dict)
    ui: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: Any) -> Credentials:
        api = parse_logins(getattr(args, "api_auth", None) or "", "--api-auth")
        ui = parse_logins(getattr(args, "gradio_auth", None) or "", "--gradio-auth")
        path = getattr(args, "gradio_auth_path", None)
        if path:
            ui = {**ui, **_read_login_file(path)}
        return cls(api, ui)

    @property
    def required(self) -> bool:
        """True when any login is configured: then every route asks for one."""
        return bool(self.api or self.ui)

    @property
    def basic(self) -> Mapping[str, str]:
        """Who may use HTTP Basic: the API logins, else (only --gradio-auth) the UI logins."""
        return self.api or self.ui

    def check_basic(self, user: str, password: str) -> bool:
        return check_password(self.basic, user, password)

    def passwords(self) -> set[str]:
        return {*self.api.values(), *self.ui.values()}


def check_password(users: Mapping[str, str], user: str, password: str) -> bool:
    """Constant-time check of one login against `users`."""
    expected = users.get(user)
    # compare against something even for an unknown user, so timing does not tell users apart
    ok = hmac.compare_digest(password.encode(), (expected if expected is not None else "\0").encode())
    return ok and expected is not None


# -- redacting text -------------------------------------------------------------------------------------


class Redactor:
    """Replaces secret values in text: the passwords, the secret flags' values and the secret
    settings' current values (`sources` are called each time, so a changed setting counts at once)."""

    def __init__(self, *sources: Callable[[], Iterable[str]]) -> None:
        self.sources = sources

    def secrets(self) -> list[str]:
        found = {s for source in self.sources for s in source() if isinstance(s, str) and s}
        return sorted(found, key=len, reverse=True)  # longest first: "user:pass" before "pass"

    def __call__(self, text: str) -> str:
        for secret in self.secrets():
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def secret_values(flags: Mapping[str, Any], credentials: Credentials) -> set[str]:
    """Every secret the flags carry: passwords and the text of each secret flag (e.g. a token)."""
    values = set(credentials.passwords())
    for key, value in flags.items():
        if is_secret_name(key) and _is_set(value):
            values.update(str(v) for v in (value if isinstance(value, list) else [value]))
    return values


def secret_option_values(options: Mapping[str, Any]) -> set[str]:
    return {v for k, v in options.items() if isinstance(v, str) and v and is_secret_name(k)}


# -- logs -----------------------------------------------------------------------------------------------

_redactors: weakref.WeakSet[Redactor] = weakref.WeakSet()
_install_lock = threading.Lock()
_installed = False


def install_log_redaction(redactor: Redactor) -> Callable[[], None]:
    """Make every log record (message, arguments, traceback) pass through `redactor` until the
    returned function is called. One record factory serves every live App of the process."""
    global _installed
    with _install_lock:
        _redactors.add(redactor)
        if not _installed:
            logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
            _installed = True
    return lambda: _redactors.discard(redactor)


def redact_text(text: str) -> str:
    """`text` with the secrets of every live App masked: for error messages on their way out (the HTTP
    API's error bodies, the web UI's error boxes), which are made far from any App."""
    return _redacted(text, list(_redactors))


def _redacted(text: str, redactors: list[Redactor]) -> str:
    for redact in redactors:
        text = redact(text)
    return text


def _redacting_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redactors = list(_redactors)
        if not redactors:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let logging report it as usual
            return record
        redacted = _redacted(message, redactors)
        if redacted != message:  # untouched otherwise: some formatters read `args` (uvicorn's access log)
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            text = formatter.formatException(record.exc_info)
            redacted = _redacted(text, redactors)
            if redacted != text:
                record.exc_text = redacted
        if record.stack_info:
            record.stack_info = _redacted(record.stack_info, redactors)
        return record

    return factory
