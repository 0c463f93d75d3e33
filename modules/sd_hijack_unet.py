"""A1111's `modules.sd_hijack_unet`: `th`, the torch its UNet joins skip connections with.

`th` reads as `torch` (FreeU imports it as its torch). `th.cat` is the UNet's skip concatenation
(`cat([h, skip], dim=1)` in every up block): assigning it (`th.cat = partial(my_cat, original_function=
th.cat)`, FreeU's way) makes Sumi's UNets join their skips through it, as A1111's LDM UNet does
(`modules/sumi/engine/extensions/skip_concat.py`). Assigning any other name is refused with an error
naming the extension, since nothing in Sumi would call it."""

from __future__ import annotations

import sys
from typing import Any

import torch

from modules import shared
from modules.sumi.engine.extensions.skip_concat import set_skip_concat, skip_concat
from modules.sumi.services.scripts.refusals import calling_extension, patch_refusal
from modules.sumi.util.unsupported import NotSupportedInSumi


class TorchHijack:
    """`torch`'s attributes; `cat` is the UNet's skip concatenation, and the one that may be replaced."""

    def __getattr__(self, name: str) -> Any:
        return skip_concat() if name == "cat" else getattr(torch, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "cat":
            set_skip_concat(value)
            return
        extension = calling_extension(sys._getframe(1), shared._extension_roots())
        raise NotSupportedInSumi(patch_refusal(extension, f"modules.sd_hijack_unet.th.{name}"))


th = TorchHijack()
