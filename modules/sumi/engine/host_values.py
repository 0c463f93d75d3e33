"""The sampling loop's small host values on the device, without waiting for the device.

A blocking host-to-device copy (`tensor.to("cuda")`, `torch.tensor(..., device="cuda")`) returns only
when the GPU has run everything queued before it; and reading a device value on the host (`float(t)`,
`if sigma > 0`) waits the same way. Once per step either one stops the CPU from queuing the next step's
kernels while the GPU runs this one. So the loops keep their schedules (sigmas, timesteps, alphas) on the
host, decide on the host, and send values here: a scalar is made on the device by a fill kernel (the value
travels as a kernel argument), a tensor through pinned memory with a non-blocking copy.
"""

from __future__ import annotations

from collections.abc import Hashable

import torch


def scalar_on(
    value: torch.Tensor | float, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A host scalar (a number, or a one-element host tensor, keeping its shape) made on `device`."""
    if isinstance(value, torch.Tensor):
        if value.device == device:
            return value if dtype is None else value.to(dtype)
        if value.device.type != "cpu" or value.numel() != 1:
            return send(value, device, dtype)
        shape, number, dtype = value.shape, value.item(), dtype or value.dtype
    else:
        shape, number, dtype = torch.Size(()), value, dtype or torch.float32
    return torch.full(shape, number, dtype=dtype, device=device)


def send(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A host tensor on `device` without blocking: through pinned memory when the device is a GPU (the
    caching host allocator keeps the pinned block until the copy has run)."""
    if tensor.device == device:
        return tensor if dtype is None else tensor.to(dtype)
    if tensor.device.type == "cpu" and device.type == "cuda":
        try:
            tensor = tensor.pin_memory()
        except RuntimeError:  # no pinned memory left: a plain copy (it waits, but the job goes on)
            return tensor.to(device=device, dtype=dtype)
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


class SentOnce:
    """Host tensors sent to a device at their first use and kept there (a unit's control image, a
    reference's latents): a copy at every model call would wait for the device each time."""

    def __init__(self) -> None:
        self._sent: dict[tuple[Hashable, torch.device, torch.dtype | None], torch.Tensor] = {}

    def get(
        self, name: Hashable, tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        key = (name, device, dtype)
        if key not in self._sent:
            self._sent[key] = send(tensor, device, dtype)
        return self._sent[key]
