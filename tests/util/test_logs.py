"""Bounded logs: one traceback per kind of error, and a flood of one message costs a few lines."""

from __future__ import annotations

import io
import logging
import logging.handlers

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


def _with_clean_root(monkeypatch, handlers: list[logging.Handler]) -> logging.Logger:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(handlers))
    monkeypatch.setattr(root, "level", root.level)
    return root


def test_the_log_file_rotates_so_a_flood_keeps_the_disk_use_bounded(tmp_path, monkeypatch):
    from modules.sumi.util import logs

    monkeypatch.setattr(logs, "LOG_FILE_BYTES", 20_000)
    root = _with_clean_root(monkeypatch, [logging.NullHandler()])
    added = logs.configure_logging(tmp_path / "logs" / "sumi.log")
    try:
        for n in range(5000):  # distinct messages, so repetition filtering does not shrink them
            logging.getLogger("sumi.test.flood").warning(f"request {n} failed: " + "x" * 40)
    finally:
        for handler in added:
            handler.close()
            root.removeHandler(handler)
    files = sorted((tmp_path / "logs").iterdir())
    assert [f.name for f in files] == ["sumi.log"] + [
        f"sumi.log.{i}" for i in range(1, logs.LOG_FILE_BACKUPS + 1)
    ]
    assert sum(f.stat().st_size for f in files) <= (logs.LOG_FILE_BACKUPS + 1) * (20_000 + 200)
    assert "request 4999 failed" in (tmp_path / "logs" / "sumi.log").read_text()


def test_logging_set_up_by_another_program_keeps_its_handlers_unfiltered(tmp_path, monkeypatch):
    from modules.sumi.util import logs

    theirs = logging.StreamHandler(io.StringIO())
    root = _with_clean_root(monkeypatch, [theirs])
    added = logs.configure_logging(tmp_path / "sumi.log")
    try:
        assert theirs.filters == []  # the RepeatFilter changes records: only on Sumi's own handlers
        assert len(added) == 1 and isinstance(added[0], logging.handlers.RotatingFileHandler)
        assert any(isinstance(f, RepeatFilter) for f in added[0].filters)
    finally:
        for handler in added:
            handler.close()
            root.removeHandler(handler)
