"""How the server answers a failure: A1111's JSON error body, a status that says whose fault it was,
one traceback in the log, and a bound on request bodies.

Every error is `{"error": <exception type>, "detail": ..., "body": "", "errors": <message>}` (the
shape of A1111's API exception handler); the request body is never echoed back. The status comes from
the exception's class, never from its words:

| exception | status |
| --- | --- |
| `NotFoundError` (a resource the URL names), an unknown route | 404 |
| `InvalidRequestError`, `ModelLoadError`, any other `EngineError` | 400 |
| a body that does not fit the schema (`RequestValidationError`) | 422 |
| a body over `--max-request-body-mb` | 413 |
| `torch.OutOfMemoryError` | 507 |
| an exception with an integer `status_code` (A1111's convention) | that status |
| anything else | 500, naming the route and the exception |
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modules.sumi.engine.errors import EngineError, NotFoundError
from modules.sumi.services.settings.secrets import redact_text
from modules.sumi.util.logs import report_exception, was_reported

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_INPUT_ECHO = 100  # a validation error repeats the offending value only when it is this short


def error_content(error: str, detail: Any, errors: str) -> dict[str, Any]:
    """The body of every error; secrets never leave the process, not even in an error message."""
    return {"error": error, "detail": _redacted(detail), "body": "", "errors": redact_text(errors)}


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def error_response(exc: BaseException, status: int, detail: Any = None, headers=None) -> JSONResponse:
    message = str(exc)
    return JSONResponse(
        status_code=status,
        content=error_content(type(exc).__name__, message if detail is None else detail, message),
        headers=headers,
    )


def status_for(exc: BaseException) -> int:
    """The HTTP status for an exception, by its class."""
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, EngineError):
        return 400
    if isinstance(exc, torch.OutOfMemoryError):
        return 507
    status = vars(exc).get("status_code") if hasattr(exc, "__dict__") else None
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 500


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's list of {loc, msg, type}, with the offending value only when it is short (a 20 MB
    prompt is not sent back)."""
    details = []
    for error in exc.errors():
        item = {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        value = error.get("input")
        if _plain(value) and (not isinstance(value, str) or len(value) <= MAX_INPUT_ECHO):
            item["input"] = value
        if error.get("ctx"):
            item["ctx"] = {k: v if _plain(v) else str(v) for k, v in error["ctx"].items()}
        details.append(item)
    return details


def _plain(value: Any) -> bool:
    """A value JSON can carry as is (NaN and infinity cannot)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (int, str, bool))


def _validation_summary(details: list[dict[str, Any]]) -> str:
    parts = [".".join(str(p) for p in d["loc"]) + f": {d['msg']}" for d in details[:10]]
    more = f" (and {len(details) - 10} more)" if len(details) > 10 else ""
    return "; ".join(parts) + more


def install_error_handlers(fastapi_app: FastAPI) -> None:
    """Handlers for the errors a route raises on purpose (the middleware below catches the rest)."""

    @fastapi_app.exception_handler(EngineError)
    async def engine_error(_: Request, exc: EngineError) -> JSONResponse:
        return error_response(exc, status_for(exc))

    @fastapi_app.exception_handler(torch.OutOfMemoryError)
    async def out_of_memory(_: Request, exc: torch.OutOfMemoryError) -> JSONResponse:
        log.warning("Out of GPU memory: %s", exc)
        msg = RuntimeError("Out of GPU memory: try a smaller size or batch, or --medvram / --lowvram")
        return error_response(msg, 507)

    @fastapi_app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        return JSONResponse(
            status_code=422, content=error_content(type(exc).__name__, details, _validation_summary(details))
        )

    @fastapi_app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=error_content(type(exc).__name__, exc.detail, str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )


class ErrorMiddleware:
    """The last line: any exception no handler took becomes A1111's JSON error (never a bare 500 page),
    logged with one traceback (one line when a job already logged it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            what = f"{scope.get('method', '')} {scope.get('path', '')}"
            if was_reported(exc):
                log.error("API error: %s failed: %s: %s (traceback above)", what, type(exc).__name__, exc)
            else:
                report_exception(log, "API error: %s failed", exc, what)
            if started:  # the response is under way: nothing more can be said to this client
                return
            status = status_for(exc)
            detail = f"{what} failed: {type(exc).__name__}: {exc}"
            await error_response(exc, status, detail=detail)(scope, receive, send)


class BodyTooLarge(StarletteHTTPException):
    """Raised while a route reads a body past the limit; FastAPI passes it on to the handler above."""

    def __init__(self, limit: int) -> None:
        mb = limit / (1024 * 1024)
        super().__init__(413, f"The request body is larger than {mb:g} MB (--max-request-body-mb)")


class BodyLimitMiddleware:
    """413 for a request body over `limit` bytes: at once when Content-Length says so, else as soon as
    the streamed body passes it. Nothing over the limit is ever held in memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _drain(receive)
            await _too_large(BodyTooLarge(self.limit))(scope, receive, send)
            return
        seen = 0
        started = False
        finished = False

        async def receive_counting() -> Message:
            nonlocal seen
            nonlocal finished
            message = await receive()
            finished = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def send_tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counting, send_tracking)
        except BodyTooLarge as exc:  # a route that reads the body outside FastAPI's handlers
            if not started:
                await _drain(receive)
                await _too_large(exc)(scope, receive, send)
                return
        if seen > self.limit and not finished:
            await _drain(receive)


async def _drain(receive: Receive) -> None:
    """Read the rest of a refused body and drop it, so the client (which is still sending) reads the
    413 instead of a reset connection. Nothing is kept."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _too_large(exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse(status_code=413, content=error_content(type(exc).__name__, exc.detail, exc.detail))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install(fastapi_app: FastAPI, max_body_bytes: int) -> None:
    """Error handlers, the body limit and the last-line error middleware on the whole server."""
    install_error_handlers(fastapi_app)
    fastapi_app.add_middleware(BodyLimitMiddleware, limit=max_body_bytes)  # type: ignore[arg-type]
    fastapi_app.add_middleware(ErrorMiddleware)  # type: ignore[arg-type]  (outermost: added last)


__all__ = ["BodyLimitMiddleware", "ErrorMiddleware", "install", "install_error_handlers", "status_for"]
