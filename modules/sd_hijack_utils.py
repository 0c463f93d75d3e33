"""A1111's `modules.sd_hijack_utils`, importable: Sumi patches no functions by name.

`CondFunc(orig_func, sub_func, cond_func)` (A1111's conditional monkeypatch of a function named by its
dotted path) is refused with an error naming the extension and the target, since the targets are A1111's
LDM internals or third-party functions Sumi does not let extensions replace."""

from __future__ import annotations

import sys
from typing import Any

from modules import shared
from modules.sumi.services.scripts.refusals import calling_extension, patch_refusal
from modules.sumi.util.unsupported import NotSupportedInSumi


class CondFunc:
    def __init__(self, orig_func: Any, sub_func: Any = None, cond_func: Any = None) -> None:
        extension = calling_extension(sys._getframe(1), shared._extension_roots())
        target = (
            orig_func if isinstance(orig_func, str) else getattr(orig_func, "__qualname__", repr(orig_func))
        )
        raise NotSupportedInSumi(patch_refusal(extension, f"{target} (sd_hijack_utils.CondFunc)"))
