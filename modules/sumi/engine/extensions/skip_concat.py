"""The UNet's skip concatenation as one replaceable function: A1111's `sd_hijack_unet.th.cat`.

Every up block of a UNet joins its input with the matching down block's output,
`cat([h, skip], dim=1)`. A1111's LDM UNet calls that through `sd_hijack_unet.th.cat`, so an extension
that replaces it (FreeU: scale the backbone `h`, filter `skip` in frequency) changes every skip join
and nothing else. Diffusers' up blocks call `torch.cat` of their own module for exactly these joins and
for nothing else, so while a replacement is set, that module's `torch` is a view of torch whose `cat`
is the replacement; with none set it is torch itself again (no cost, nothing for torch.compile to see).
The replacement is process-wide, as in A1111.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from diffusers.models.unets import unet_2d_blocks

_lock = threading.Lock()
_concat: Callable[..., torch.Tensor] = torch.cat


class _TorchWithSkipConcat:
    """`torch` for diffusers' UNet blocks, except `cat`, which is the skip concatenation set here."""

    def __getattr__(self, name: str) -> Any:
        return _concat if name == "cat" else getattr(torch, name)


def skip_concat() -> Callable[..., torch.Tensor]:
    """The function the UNet's up blocks join `[h, skip]` with now (`torch.cat` unless replaced)."""
    return _concat


def set_skip_concat(function: Callable[..., torch.Tensor]) -> None:
    """Join every UNet skip with `function(tensors, dim=1)` from now on; `torch.cat` puts it back."""
    global _concat
    if not callable(function):
        raise TypeError(f"the skip concatenation must be callable, not {type(function).__name__}")
    with _lock:
        _concat = function
        unet_2d_blocks.torch = torch if function is torch.cat else _TorchWithSkipConcat()  # type: ignore[assignment]
