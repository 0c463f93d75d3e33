"""Bounded logs: one traceback per kind of error, and a flood of one message costs a few lines."""

from __future__ import annotations

import io
import logging

from modules.sumi.util.logs import RepeatFilter, report_exception, was_reported


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatFilter(every_line=10))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def _fail(n: int) -> None:
    raise RuntimeError(f"boom {n}")


def test_a_thousand_identical_errors_write_one_traceback_and_a_bounded_number_of_lines():
    logger, stream = _logger("sumi.test.repeat")
    for n in range(1000):
        try:
            _fail(n)
        except RuntimeError as exc:
            logger.error("API error: %s failed", f"request {n}", exc_info=exc)
    text = stream.getvalue()
    assert text.count("Traceback (most recent call last)") == 1
    lines = [line for line in text.splitlines() if line.startswith("API error")]
    assert len(lines) == 10 + 2  # the first ten, then the 100th and the 1000th with a count
    assert "[1000 occurrences of this message so far]" in lines[-1]


def test_different_errors_each_keep_their_traceback_and_quiet_records_pass():
    logger, stream = _logger("sumi.test.kinds")
    for exc in (ValueError("a"), KeyError("b")):
        try:
            raise exc
        except Exception as caught:
            logger.error("failed", exc_info=caught)
    for _ in range(50):
        logger.info("request done")  # below WARNING: never collapsed
    text = stream.getvalue()
    assert text.count("Traceback") == 2 and text.count("request done") == 50


def test_report_exception_marks_what_it_logged():
    logger, stream = _logger("sumi.test.report")
    exc = RuntimeError("once")
    assert not was_reported(exc)
    report_exception(logger, "job %s failed", exc, 7)
    assert was_reported(exc) and "job 7 failed" in stream.getvalue()
