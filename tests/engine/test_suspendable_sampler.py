"""A sampler run that stops at an outward call and goes on later (the refiner switch for Sumi's own
samplers): the outward calls run on the serving thread, state survives the stop, errors travel both
ways, an abandoned run ends its thread, and the caller's torch modes hold for the sampler's arithmetic."""

from __future__ import annotations

import threading

import pytest
import torch

from modules.sumi.engine.sampling.suspendable import AbandonedRun, SuspendableRun


def _counting_run(model, log: list) -> SuspendableRun:
    """A sampler-like body that sums five model calls, logging its running total."""

    def body():
        total = 0
        for i in range(5):
            total += call(i)
            log.append(total)
        return total

    relay = SuspendableRun(body)
    call = relay.outward(model, "model")
    return relay


def test_outward_calls_run_on_the_serving_thread_and_the_result_comes_back():
    threads: list[int] = []

    def model(i):
        threads.append(threading.get_ident())
        return i * 10

    log: list[int] = []
    relay = _counting_run(model, log)
    assert relay.serve() == 100
    assert relay.finished and threads == [threading.get_ident()] * 5 and log == [0, 10, 30, 60, 100]


def test_a_run_stopped_before_a_call_goes_on_with_its_state_and_a_swapped_model():
    models = {"now": lambda i: i}
    log: list[int] = []
    relay = _counting_run(lambda i: models["now"](i), log)
    assert relay.serve(lambda call: call.tag == "model" and call.args[0] == 3) is None
    assert not relay.finished and relay.pending is not None and log == [0, 1, 3]
    models["now"] = lambda i: 100 * i  # the refiner
    assert relay.serve() == 0 + 1 + 2 + 300 + 400


def test_an_error_in_an_outward_call_unwinds_the_sampler_and_is_raised_by_serve():
    unwound: list[type] = []

    def failing(i):
        if i == 2:
            raise MemoryError("out of memory at call 2")
        return 0

    def body():
        try:
            for i in range(5):
                model(i)
        except BaseException as error:
            unwound.append(type(error))
            raise

    relay = SuspendableRun(body)
    model = relay.outward(failing)
    with pytest.raises(MemoryError, match="call 2"):
        relay.serve()
    assert unwound == [MemoryError] and relay.finished


def test_closing_a_stopped_run_ends_its_thread():
    seen: list[type] = []

    def body():
        try:
            for i in range(5):
                model(i)
        except AbandonedRun:
            seen.append(AbandonedRun)
            raise

    relay = SuspendableRun(body)
    model = relay.outward(lambda i: i)
    assert relay.serve(lambda call: call.args[0] == 1) is None
    relay.close()
    assert seen == [AbandonedRun] and relay.finished
    assert not [t for t in threading.enumerate() if t.name == "sumi-sampler"]
    with pytest.raises(RuntimeError, match="already finished"):
        relay.serve()


def test_the_sampler_arithmetic_runs_in_the_callers_grad_and_inference_modes():
    modes: list[tuple[bool, bool]] = []

    def body():
        modes.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
        x = model(torch.zeros(2))
        x.add_(1)  # in place on an inference tensor: only allowed in inference mode
        return x

    with torch.inference_mode():
        relay = SuspendableRun(body)
        model = relay.outward(lambda x: x + 1)
        out = relay.serve()
    assert modes == [(False, True)] and out.tolist() == [2.0, 2.0]


def test_a_stop_test_that_fails_ends_the_run_and_its_thread():
    def stop_before(call):
        raise ValueError("bad switch point")

    relay = _counting_run(lambda i: i, [])
    with pytest.raises(ValueError, match="bad switch point"):
        relay.serve(stop_before)
    assert relay.finished and not [t for t in threading.enumerate() if t.name == "sumi-sampler"]
