"""A1111's `modules.errors`: report an error on the console, with its traceback, and keep going.

Messages go to stderr in A1111's `*** message` layout; the last exceptions are kept in
`exception_records` (newest last) for whoever wants to show them.
"""

from __future__ import annotations

import sys
import textwrap
import traceback
from collections.abc import Callable
from typing import Any

from modules.sumi.util.logs import remember_exception

exception_records: list[dict[str, Any]] = []
already_displayed: dict[str, int] = {}
MAX_RECORDS = 5


def format_exception(e: BaseException, tb: Any) -> dict[str, Any]:
    return {"exception": str(e), "traceback": [list(frame) for frame in traceback.extract_tb(tb)]}


def get_exceptions() -> list[dict[str, Any]]:
    return list(reversed(exception_records))


def record_exception() -> None:
    _, e, tb = sys.exc_info()
    if e is None:
        return
    remember_exception(e)  # Sumi's own record, shown in the system info
    if exception_records and exception_records[-1]["exception"] == str(e):
        return
    exception_records.append(format_exception(e, tb))
    del exception_records[:-MAX_RECORDS]


def report(message: str, *, exc_info: bool = False) -> None:
    """Print `message` to stderr (each line prefixed with ***), with the current traceback if asked."""
    record_exception()
    for line in message.splitlines():
        print("***", line, file=sys.stderr)
    if exc_info:
        print(textwrap.indent(traceback.format_exc(), "    "), file=sys.stderr)
        print("---", file=sys.stderr)


def print_error_explanation(message: str) -> None:
    """Print a boxed explanation under an error."""
    record_exception()
    lines = message.strip().split("\n")
    width = max(len(line) for line in lines)
    print("=" * width, file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print("=" * width, file=sys.stderr)


def display(e: BaseException, task: str | None, *, full_traceback: bool = False) -> None:
    """Print which task failed and the exception's traceback."""
    record_exception()
    print(f"{task or 'error'}: {type(e).__name__}", file=sys.stderr)
    te = traceback.TracebackException.from_exception(e)
    if full_traceback:  # include the frames above the one that caught it
        te.stack = traceback.StackSummary(traceback.extract_stack()[:-2] + te.stack)
    print(*te.format(), sep="", file=sys.stderr)


def display_once(e: BaseException, task: str) -> None:
    """`display`, but only the first time this task fails."""
    record_exception()
    if task in already_displayed:
        return
    display(e, task)
    already_displayed[task] = 1


def run(code: Callable[[], Any], task: str) -> None:
    """Run `code()`; an exception is displayed and swallowed."""
    try:
        code()
    except Exception as e:
        display(e, task)


def check_versions() -> None:
    """A1111 warns about torch/xformers/gradio versions here; Sumi pins its own in requirements.txt."""
