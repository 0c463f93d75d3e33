"""Sumi's page-load events answered directly, not through Gradio's queue.

A page fires about sixteen load events (settings values, model cards, the size sliders, the checkpoint
list...). Through the queue each is a join request plus an event stream, and they wait on one another:
the page settled about 1.2 s later than with a plain request per event (2-core dev machine, 5 loads each,
medians 7.4 s vs 6.2 s from navigation to the sliders' first values). They only read the server's state,
so nothing needs the queue's ordering or limits. Extensions' load events keep what they asked for, and
a generator (a stream) always stays on the queue, which is the only way Gradio can stream it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import gradio as gr
from gradio.block_function import BlockFunction

SUMI_PACKAGE = "modules.sumi."


def answer_page_loads_directly(demo: gr.Blocks) -> int:
    """Take Sumi's non-streaming load events of `demo` off the queue; how many were."""
    count = 0
    for function in demo.fns.values():
        # types_generator: Gradio's own test (generators and async generators, through partials)
        if _is_page_load(function) and _is_sumi_code(function.fn) and not function.types_generator:
            function.queue = False
            count += 1
    return count


def _is_page_load(function: BlockFunction) -> bool:
    return any(event == "load" for _, event in function.targets)


def _is_sumi_code(fn: Callable | None) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return (getattr(fn, "__module__", None) or "").startswith(SUMI_PACKAGE)
