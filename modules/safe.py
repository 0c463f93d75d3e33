"""A1111's `modules.safe`: loading pickled `.pt`/`.ckpt` files without running code from them.

Sumi never replaces `torch.load`, so `unsafe_torch_load` is torch's own function (extensions
assign it back to `torch.load`, which changes nothing). `load` reads tensors and plain containers
only (`torch.load(weights_only=True)`) unless `--disable-safe-unpickle` is given, as Sumi's own
loaders do. `Extra` (A1111's allow-list extension) changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from modules import shared

unsafe_torch_load = torch.load


def load(filename: Any, *args: Any, **kwargs: Any) -> Any:
    app = shared.running_app()
    unsafe = bool(getattr(app.args, "disable_safe_unpickle", False)) if app is not None else False
    kwargs["weights_only"] = not unsafe
    return unsafe_torch_load(filename, *args, **kwargs)


def load_with_extra(filename: Any, extra_handler: Any = None, *args: Any, **kwargs: Any) -> Any:
    return load(filename, *args, **kwargs)


class Extra(contextlib.AbstractContextManager):
    def __init__(self, handler: Any = None) -> None:
        self.handler = handler

    def __exit__(self, *exc: object) -> None:
        return None
