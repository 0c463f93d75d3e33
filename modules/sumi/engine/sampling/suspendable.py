"""A sampler function that can stop at a model call and go on later, with another model.

Sumi's own samplers (`k_loop`) are plain functions that keep their state (the multistep history, the
Brownian tree, DPM adaptive's error control) in local variables, so they cannot return half way. The
refiner switch needs exactly that: stop at the first model call past the switch point, change model
(leave one model's patch scope, load the other, enter its scope) and go on with the same state, as
A1111's `apply_refiner` does inside its denoiser.

`SuspendableRun` runs the function on a worker thread that does the sampler's arithmetic only. Every
call the function makes outward (`outward`: the model, progress, hooks) is run on the thread that calls
`serve`, so models, extensions and callbacks keep that thread's torch modes, and that thread can stop
serving before a model call and pick it up again later. The worker only ever runs while the serving
thread waits for it, so nothing runs concurrently.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class OutwardCall:
    """A call the sampler made outward, waiting to be run by the serving thread."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    tag: str


@dataclass
class _Finished:
    result: Any = None
    error: BaseException | None = None


class AbandonedRun(Exception):
    """Raised inside a suspended sampler that will not be resumed, so its thread unwinds and ends."""


class SuspendableRun:
    """`body()` on a worker thread; `serve(stop_before)` runs its outward calls until it returns
    (`finished` is then True and `serve` gives its result), or until `stop_before(call)` is true for a
    call, which then waits for the next `serve`. `close()` ends a run that will not be served again."""

    def __init__(self, body: Callable[[], Any]) -> None:
        self._body = body
        self._requests: queue.SimpleQueue[OutwardCall | _Finished] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pending: OutwardCall | None = None  # the call the run stopped before
        self.finished = False

    def outward(self, function: Callable[..., Any], tag: str = "") -> Callable[..., Any]:
        """`function` as the worker calls it: run by the serving thread, its result or error returned."""

        def call(*args: Any, **kwargs: Any) -> Any:
            self._requests.put(OutwardCall(function, args, kwargs, tag))
            ok, value = self._replies.get()
            if not ok:
                raise value
            return value

        return call

    def serve(self, stop_before: Callable[[OutwardCall], bool] | None = None) -> Any:
        """Run the outward calls until the body returns (its result; its error is raised here) or stops
        before a call (None, with `pending` set)."""
        if self.finished:
            raise RuntimeError("this sampler run has already finished")
        self._start()
        while True:
            request = self.pending if self.pending is not None else self._requests.get()
            self.pending = None
            if isinstance(request, _Finished):
                return self._end(request)
            try:
                stop = stop_before is not None and stop_before(request)
            except BaseException:
                self.pending = request
                self.close()  # nobody would resume it: the sampler unwinds and its thread ends
                raise
            if stop:
                self.pending = request
                return None
            try:
                self._replies.put((True, request.function(*request.args, **request.kwargs)))
            except BaseException as error:  # noqa: BLE001 - handed to the sampler, which unwinds with it
                self._replies.put((False, error))

    def close(self) -> None:
        """End a run that was stopped and will not be served again (its thread unwinds and exits)."""
        if self._thread is None or self.finished:
            return
        request = self.pending if self.pending is not None else self._requests.get()
        self.pending = None
        while not isinstance(request, _Finished):
            self._replies.put((False, AbandonedRun("the sampler run was abandoned")))
            request = self._requests.get()
        self.finished = True
        self._thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
        self._thread = threading.Thread(
            target=self._work, args=(grad, inference), name="sumi-sampler", daemon=True
        )
        self._thread.start()

    def _work(self, grad: bool, inference: bool) -> None:
        # torch's grad and inference modes are per thread: the sampler's arithmetic runs in the caller's
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            try:
                result = self._body()
            except BaseException as error:  # noqa: BLE001 - raised again on the serving thread
                self._requests.put(_Finished(error=error))
                return
        self._requests.put(_Finished(result=result))

    def _end(self, finished: _Finished) -> Any:
        self.finished = True
        if self._thread is not None:
            self._thread.join()
        if finished.error is not None:
            raise finished.error
        return finished.result


__all__ = ["AbandonedRun", "OutwardCall", "SuspendableRun"]
