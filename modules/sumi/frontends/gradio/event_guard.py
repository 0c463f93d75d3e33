"""Events an extension left half-made are taken off the page, so the page still builds.

Gradio registers an event on the page (`Blocks.fns`) before it checks the event's inputs and outputs:
`button.click(fn, inputs=[None])` raises, but the event stays, and the whole page then fails to build
when Gradio writes its config ("'NoneType' object has no attribute '_id'"). Extensions wire events to
components they caught in `on_after_component`, which are still None when those were never made (a
neutral-prompt accordion built for mov2mov's own script runner), so one extension's slip would stop
Sumi from starting. A1111's Gradio 3 checked the same way; a failing `ui()` was only logged there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from gradio.block_function import BlockFunction
from gradio.blocks import Block
from gradio.context import get_blocks_context


def event_ids() -> set[int]:
    """The ids of the events registered so far in the Blocks being built (empty outside any)."""
    context = get_blocks_context()
    return set(context.fns) if context is not None else set()


def drop_broken_events_since(before: set[int]) -> int:
    """Take off the broken events registered since `before` (from `event_ids()`), unreported (the
    failure that left them is); how many there were. Its other events stay, as in A1111."""
    context = get_blocks_context()
    if context is None:
        return 0
    return _drop(context.fns, {i for i in set(context.fns) - before if not _wired_to_blocks(context.fns[i])})


def drop_broken_events(fns: dict[int, BlockFunction], report: Callable[[str], None]) -> None:
    """Take off every event whose inputs or outputs are not components, and the events chained to it
    with `.then()`; each is reported with the file of its function."""
    broken = {fn_id for fn_id, fn in fns.items() if not _wired_to_blocks(fn)}
    for fn_id in sorted(broken):
        fn = fns[fn_id]
        report(
            f"An event made by {_source(fn)} names something that is not a component in its inputs or "
            f"outputs ({_odd_items(fn)}); it was left off the page"
        )
    _drop(fns, broken)


def _wired_to_blocks(fn: BlockFunction) -> bool:
    return all(isinstance(item, Block) for item in [*fn.inputs, *fn.outputs])


def _odd_items(fn: BlockFunction) -> str:
    return ", ".join(repr(item) for item in [*fn.inputs, *fn.outputs] if not isinstance(item, Block))


def _source(fn: BlockFunction) -> str:
    target: Any = fn.fn
    try:
        return inspect.getsourcefile(inspect.unwrap(target)) or str(fn.name)
    except TypeError:  # no function (a JavaScript-only event) or a built-in
        return str(fn.name)


def _drop(fns: dict[int, BlockFunction], doomed: set[int]) -> int:
    """Remove `doomed` and whatever runs after them (`.then`, `.success`); cancel lists forget them."""
    doomed = set(doomed)
    chained = True
    while chained:
        followers = {i for i, fn in fns.items() if fn.trigger_after in doomed and i not in doomed}
        chained = bool(followers)
        doomed |= followers
    for fn_id in doomed:
        fns.pop(fn_id, None)
    for fn in fns.values():
        fn.cancels = [c for c in fn.cancels if c not in doomed]
    return len(doomed)
