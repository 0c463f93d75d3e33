"""FP8 weight storage (A1111's "FP8 weight" setting): the UNet's Linear and Conv2d weights are kept
as `torch.float8_e4m3fn` (one byte each instead of two in fp16, four in fp32) and upcast to the
input's dtype layer by layer at forward, so the whole UNet never exists at full precision at once.
It works on the CPU too (there it saves RAM).

The layers change class to Sumi's `Fp8Linear`/`Fp8Conv2d` (subclasses of the torch classes, so
`isinstance` checks, state-dict keys, hooks and LoRA patching see the same modules; torch's classes
are untouched). Biases stay in the compute dtype (they are small).

LoRA: the patcher adds its fp32 delta to the layer's pristine weight and stores the result in fp8;
with `cache_fp16` each layer keeps an fp16 copy of its original weight on the CPU (`fp16_weight`, as
A1111) and the delta is added to that copy instead of the fp8-rounded weight (better LoRA quality, more
RAM). Restoring copies the pristine fp8 tensor back, bit-exact. Turning fp8 off needs the weights
read again (the fp8 rounding cannot be undone): the model manager re-reads the checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FP8_DTYPE = torch.float8_e4m3fn
SETTING_CHOICES = ("Disable", "Enable for SDXL", "Enable")


class Fp8Linear(torch.nn.Linear):
    """A Linear whose weight is stored in fp8 and upcast to the input's dtype for each call."""

    def forward(self, input: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(input.dtype)
        return F.linear(input, self.weight.to(input.dtype), bias)


class Fp8Conv2d(torch.nn.Conv2d):
    """A Conv2d whose weight is stored in fp8 and upcast to the input's dtype for each call."""

    def forward(self, input: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(input.dtype)
        return self._conv_forward(input, self.weight.to(input.dtype), bias)


_SWAPS: dict[type, type] = {torch.nn.Linear: Fp8Linear, torch.nn.Conv2d: Fp8Conv2d}


def wanted(setting: str, *, is_sdxl: bool) -> bool:
    """Whether the `fp8_storage` setting asks for fp8 on this model."""
    if setting not in SETTING_CHOICES:
        raise ValueError(f"fp8_storage must be one of {', '.join(SETTING_CHOICES)}, not {setting!r}")
    return setting == "Enable" or (setting == "Enable for SDXL" and is_sdxl)


def supported() -> bool:
    return hasattr(torch, "float8_e4m3fn")


@torch.no_grad()
def store_in_fp8(module: torch.nn.Module, *, cache_fp16: bool = False) -> int:
    """Store every plain Linear/Conv2d weight under `module` in fp8; returns how many layers changed.

    `cache_fp16` keeps each original weight as `layer.fp16_weight` (fp16, CPU) for LoRA."""
    if not supported():
        raise RuntimeError("FP8 weight storage needs PyTorch 2.1 or newer")
    count = 0
    for layer in module.modules():
        swap = _SWAPS.get(type(layer))
        if swap is None:
            continue
        weight = layer.weight
        assert isinstance(weight, torch.nn.Parameter)
        if cache_fp16:
            layer.fp16_weight = weight.detach().to("cpu", torch.float16, copy=True)  # pyright: ignore[reportAttributeAccessIssue]
        weight.data = weight.data.to(FP8_DTYPE)
        layer.__class__ = swap
        count += 1
    return count


def is_fp8(module: torch.nn.Module) -> bool:
    return any(isinstance(layer, (Fp8Linear, Fp8Conv2d)) for layer in module.modules())


def has_fp16_cache(module: torch.nn.Module) -> bool:
    return any(getattr(layer, "fp16_weight", None) is not None for layer in module.modules())


def weight_bytes(module: torch.nn.Module) -> int:
    """Bytes held by the weights of the Linear and Conv2d layers under `module`."""
    return sum(
        layer.weight.numel() * layer.weight.element_size()
        for layer in module.modules()
        if isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d))
    )
