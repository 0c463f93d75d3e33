"""A CPU copy of modules' weights, put back exactly: what lets a fine-tune run on the generation model.

    with preserved_weights([model.unet, *encoders]):
        train_finetune(model, ...)      # trains in place, upcasts to fp32
        save_finetuned(path, model, ...)
    # every parameter and buffer is back: same values, same dtype, same device, same tensor objects

Parameters keep their identity (their data is copied back or replaced, never the Parameter), so
anything holding on to them (network patchers) still sees the model's own tensors. Where training
upcast a half-precision module the storage is new: compiled graphs of the model must be dropped
(`engine.accel.compiled.forget`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


class WeightSnapshot:
    """Every parameter and buffer of some modules, copied to the CPU with its dtype and device."""

    def __init__(self, modules: Sequence[torch.nn.Module]) -> None:
        self._saved: list[tuple[Tensor, Tensor, torch.device]] = []
        seen: set[int] = set()
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                self._saved.append((tensor, tensor.detach().to("cpu", copy=True), tensor.device))

    def restore(self) -> None:
        """Copy back into the same storage where the tensor still has its dtype (an fp32 model: compiled
        graphs stay valid); replace the storage where training upcast it."""
        with torch.no_grad():
            for tensor, saved, device in self._saved:
                if tensor.dtype == saved.dtype and tensor.shape == saved.shape and tensor.device == device:
                    tensor.data.copy_(saved)
                else:
                    tensor.data = saved.to(device)
                tensor.grad = None


@contextlib.contextmanager
def preserved_weights(modules: Sequence[torch.nn.Module]) -> Iterator[WeightSnapshot]:
    """The modules' weights as they were on entry, whatever the block did (or raised)."""
    snapshot = WeightSnapshot(modules)
    try:
        yield snapshot
    finally:
        snapshot.restore()
