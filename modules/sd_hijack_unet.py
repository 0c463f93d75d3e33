"""A1111's `modules.sd_hijack_unet`, importable: Sumi does not patch the UNet.

`th` reads as `torch` (FreeU imports it as its torch); assigning to it (`th.cat = ...`, A1111's way to
change the UNet's skip concatenation) is refused with an error naming the extension, since Sumi's
diffusers UNet never calls it. Such extensions need a port to Sumi's hooks."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import torch

from modules import shared
from modules.sumi.services.scripts.refusals import calling_extension, patch_refusal
from modules.sumi.util.unsupported import NotSupportedInSumi


class TorchHijack:
    """`torch`'s attributes, read-only: a patch through it would never reach Sumi's UNet."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        extension = calling_extension(sys._getframe(1), shared._extension_roots())
        raise NotSupportedInSumi(patch_refusal(extension, f"modules.sd_hijack_unet.th.{name}"))


th = TorchHijack()
