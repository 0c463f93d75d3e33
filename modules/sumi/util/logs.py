"""Logging that stays readable and bounded under a flood of failing requests.

- `report_exception` logs an error with its traceback once and marks the exception, so a layer
  further up (the HTTP API's error handler, the UI) logs one line for it instead of a second
  traceback (`was_reported`); the last few reported errors are kept for the system info
  (`recent_exceptions`).
- `RepeatFilter` bounds what repeats cost: the same kind of record (logger, level, message template,
  exception type and where it was raised) shows its traceback only the first time, and after
  `every_line` occurrences only every power of ten is written, with a count. A fuzzer sending
  thousands of identical bad requests adds a few lines to the log, not thousands of tracebacks.
- `configure_logging` sets up the handlers Sumi owns (the console and, with `--log-file`, a file
  rotated at `LOG_FILE_BYTES` with `LOG_FILE_BACKUPS` old files kept) and filters only those: a
  program that configured logging before (an embedding script, pytest) keeps its handlers untouched.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import threading
import traceback
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

_REPORTED = "_sumi_reported"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5  # at most 60 MB of log on disk: the live file and five rotated ones


MAX_RECENT_EXCEPTIONS = 5
_recent: deque[dict[str, Any]] = deque(maxlen=MAX_RECENT_EXCEPTIONS)
_recent_lock = threading.Lock()


def report_exception(logger: logging.Logger, message: str, exc: BaseException, *args: object) -> None:
    """Log `message` with `exc`'s traceback and remember that it was logged."""
    logger.error(message, *args, exc_info=(type(exc), exc, exc.__traceback__))
    mark_reported(exc)
    remember_exception(exc)


def remember_exception(exc: BaseException) -> None:
    """Keep `exc` among the last few errors (A1111's `exception_records`, shown in the system info);
    the same error twice in a row is kept once."""
    record = {
        "exception": f"{type(exc).__name__}: {exc}",
        "traceback": [list(frame) for frame in traceback.extract_tb(exc.__traceback__)],
    }
    with _recent_lock:
        if not _recent or _recent[-1]["exception"] != record["exception"]:
            _recent.append(record)


def recent_exceptions() -> list[dict[str, Any]]:
    """The errors `remember_exception` kept, newest first."""
    with _recent_lock:
        return list(reversed(_recent))


def mark_reported(exc: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # an exception type without a __dict__
        setattr(exc, _REPORTED, True)


def was_reported(exc: BaseException) -> bool:
    """True when `report_exception` already logged this exception (with its traceback)."""
    return bool(getattr(exc, _REPORTED, False))


def _raised_at(record: logging.LogRecord) -> tuple[str, str, int]:
    if not record.exc_info or record.exc_info[1] is None:
        return ("", "", 0)
    exc = record.exc_info[1]
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return (type(exc).__qualname__, "", 0)
    return (type(exc).__qualname__, tb.tb_frame.f_code.co_filename, tb.tb_lineno)


class RepeatFilter(logging.Filter):
    """Collapses repeated records of one kind (see the module's docstring). Put it on a handler."""

    def __init__(self, every_line: int = 10, max_kinds: int = 1024, min_level: int = logging.WARNING) -> None:
        super().__init__()
        self.every_line = every_line
        self.max_kinds = max_kinds
        self.min_level = min_level
        self._counts: OrderedDict[tuple, int] = OrderedDict()
        self._lock = threading.Lock()

    def _count(self, key: tuple) -> int:
        with self._lock:
            count = self._counts.pop(key, 0) + 1
            self._counts[key] = count
            while len(self._counts) > self.max_kinds:
                self._counts.popitem(last=False)
            return count

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        key = (record.name, record.levelno, str(record.msg), *_raised_at(record))
        count = self._count(key)
        if count == 1:
            return True
        if count > self.every_line and not _power_of_ten(count):
            return False
        if record.exc_info:  # the traceback was written the first time
            record.exc_info = None
            record.exc_text = None
            record.msg = f"{record.msg} (traceback logged at its first occurrence)"
        if count > self.every_line:
            record.msg = f"{record.msg} [{count} occurrences of this message so far]"
        return True


def _power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1


def install_repeat_filter(handlers: list[logging.Handler]) -> RepeatFilter:
    """Put one RepeatFilter on each of `handlers` (it changes the records it lets through, so it
    belongs only on handlers that all see the same records: those Sumi made)."""
    repeat = RepeatFilter()
    for handler in handlers:
        if not any(isinstance(f, RepeatFilter) for f in handler.filters):
            handler.addFilter(repeat)
    return repeat


def configure_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> list[logging.Handler]:
    """Sumi's console handler (unless the root logger has handlers already) and, with `log_file`, a
    rotating file handler, both with one RepeatFilter. Returns the handlers it added."""
    root = logging.getLogger()
    added: list[logging.Handler] = []
    if not root.handlers:
        added.append(logging.StreamHandler())
    if log_file:
        path = Path(log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        added.append(
            logging.handlers.RotatingFileHandler(
                path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
            )
        )
    for handler in added:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    if added:
        root.setLevel(level)
    install_repeat_filter(added)
    return added
