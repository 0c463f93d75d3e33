"""Low-VRAM modes: the model's weights wait on a storage device (RAM) and visit the compute device
(the GPU) only while they are used, as A1111's --medvram and --lowvram.

- "med": the text encoders, the UNet and the VAE are each one unit; using one moves it to the compute
  device and sends the others back, so only one of them is on the GPU at a time.
- "low": as "med", and the UNet itself is streamed: each of its down, mid and up blocks and each small
  module (conv_in, the time embedding, conv_out...) is a unit, on the GPU only while it runs. On CUDA
  with CPU storage the weights live in pinned host memory and the next block (in the order the last
  call ran them) is copied on a side stream while the current one computes.

Forward pre-hooks on the modules themselves trigger the moves (no torch or diffusers class is
changed). Inputs of a whole unit follow it to the compute device (token ids built where the text
encoder's weights are). Weights changed in place while on the compute device (LoRA patching) are
copied back on eviction, so patches and their exact restore work wherever the weight is.

The offloader keeps its own record: `resident()` (units on the compute device now), `moves` (the
last moves, each with its bytes) and `report()` (counts and bytes for the memory report). With
storage and compute both the CPU the moves cost nothing and the record still shows the policy, which
is how the tests check it on a machine without a GPU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.utils.hooks import RemovableHandle

from modules.sumi.engine.model import SDModel

Policy = Literal["none", "med", "low"]
POLICIES: tuple[Policy, ...] = ("none", "med", "low")
OFFLOADER_KEY = "offloader"  # SDModel.extra key holding the attached Offloader
UNET_GROUP = "unet-block"
MAX_MOVES_KEPT = 4096
_VAE_ENTRY_POINTS = ("encoder", "decoder", "quant_conv", "post_quant_conv")


def choose_policy(*, medvram: bool, lowvram: bool, medvram_sdxl: bool, is_sdxl: bool) -> Policy:
    """A1111's rule: --lowvram wins, then --medvram, then --medvram-sdxl for SDXL models only."""
    if lowvram:
        return "low"
    if medvram or (medvram_sdxl and is_sdxl):
        return "med"
    return "none"


@dataclass(frozen=True)
class OffloadFlags:
    """The user's low-VRAM flags (A1111's --medvram, --lowvram, --medvram-sdxl)."""

    medvram: bool = False
    lowvram: bool = False
    medvram_sdxl: bool = False

    def policy(self, *, is_sdxl: bool) -> Policy:
        return choose_policy(
            medvram=self.medvram, lowvram=self.lowvram, medvram_sdxl=self.medvram_sdxl, is_sdxl=is_sdxl
        )


@dataclass(frozen=True)
class Move:
    """One move the offloader made: `unit` went `to` "compute" or "storage", `nbytes` of tensors."""

    unit: str
    to: str
    nbytes: int


@dataclass
class _Unit:
    name: str
    module: torch.nn.Module
    group: str = "whole"
    state: str = "storage"  # "storage" | "arriving" (copy in flight) | "compute"
    tensors: list[torch.Tensor] = field(default_factory=list)
    host: dict[int, torch.Tensor] = field(default_factory=dict)  # id(tensor) -> its storage copy
    versions: dict[int, int] = field(default_factory=dict)  # id(tensor) -> _version after arrival
    ready: Any = None  # CUDA event marking the end of the copy in, when streamed
    nbytes: int = 0


class Offloader:
    """Moves units of a model between `storage` and `compute` around their forward calls.

    `prefetch` (default: on when the compute device is CUDA and storage is the CPU) copies the next
    UNet block in while the current one runs; on CUDA the copy runs on a side stream."""

    def __init__(
        self,
        storage: torch.device | str,
        compute: torch.device | str,
        policy: Policy,
        *,
        prefetch: bool | None = None,
    ) -> None:
        if policy not in ("med", "low"):
            raise ValueError(f"offload policy must be 'med' or 'low', not {policy!r}")
        self.storage = torch.device(storage)
        self.compute = torch.device(compute)
        self.policy: Policy = policy
        self.pinned = self.compute.type == "cuda" and self.storage.type == "cpu"
        self.prefetch = self.pinned if prefetch is None else prefetch
        self.stream = torch.cuda.Stream(self.compute) if self.pinned else None
        self.units: dict[str, _Unit] = {}
        self.moves: deque[Move] = deque(maxlen=MAX_MOVES_KEPT)
        self.peak_resident_bytes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._handles: list[RemovableHandle] = []
        self._order: list[str] = []  # UNet blocks in the order the last call ran them
        self._running: list[str] = []

    # -- building --------------------------------------------------------------------------------
    def add(
        self, name: str, module: torch.nn.Module, *, entry_points: Iterable[torch.nn.Module] = ()
    ) -> None:
        """Make `module` a whole unit, moved in when it (or one of `entry_points`, for modules not
        called through forward such as the VAE) is called. Its weights go to storage now."""
        unit = self._unit(name, module, "whole")
        for trigger in [module, *entry_points]:
            self._handles.append(trigger.register_forward_pre_hook(self._whole_hook(unit), with_kwargs=True))

    def add_streamed_unet(self, unet: torch.nn.Module) -> None:
        """Stream the UNet: each child with weights (each element of a ModuleList) is a unit."""
        if any(True for _ in unet.named_parameters(recurse=False)) or any(
            True for _ in unet.named_buffers(recurse=False)
        ):
            raise ValueError("this UNet keeps weights outside its blocks; it cannot be streamed")
        for child_name, child in unet.named_children():
            parts = list(child.named_children()) if isinstance(child, torch.nn.ModuleList) else [("", child)]
            for index, part in parts:
                if not any(True for _ in part.parameters()) and not any(True for _ in part.buffers()):
                    continue
                unit = self._unit(f"unet.{child_name}{'.' + index if index else ''}", part, UNET_GROUP)
                self._handles.append(part.register_forward_pre_hook(self._block_hook(unit)))
        self._handles.append(unet.register_forward_pre_hook(self._unet_started))
        self._handles.append(unet.register_forward_hook(self._unet_finished, always_call=True))

    def _unit(self, name: str, module: torch.nn.Module, group: str) -> _Unit:
        if name in self.units:
            raise ValueError(f"offload unit {name!r} is already attached")
        tensors = [*module.parameters(), *module.buffers()]
        unit = _Unit(name, module, group, tensors=tensors, nbytes=sum(_nbytes(t) for t in tensors))
        self.units[name] = unit
        for tensor in tensors:
            if tensor.device != self.storage or (self.pinned and not tensor.is_pinned()):
                tensor.data = _to_storage(tensor.data, self.storage, self.pinned)
        return unit

    def detach(self) -> None:
        """Remove the hooks and send every unit to storage (where the caller finds all weights)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for unit in self.units.values():
            self._evict(unit)
        self._sync()

    # -- state -----------------------------------------------------------------------------------
    def resident(self) -> list[str]:
        """Units whose weights are on the compute device now (a prefetched one once it arrived)."""
        return [u.name for u in self.units.values() if u.state == "compute"]

    def arriving(self) -> list[str]:
        return [u.name for u in self.units.values() if u.state == "arriving"]

    def resident_bytes(self) -> int:
        return sum(u.nbytes for u in self.units.values() if u.state != "storage")

    def report(self) -> dict[str, Any]:
        """Counts and bytes for the memory report."""
        return {
            "policy": self.policy,
            "storage": str(self.storage),
            "compute": str(self.compute),
            "units": len(self.units),
            "resident": self.resident(),
            "resident_bytes": self.resident_bytes(),
            "peak_resident_bytes": self.peak_resident_bytes,
            "total_bytes": sum(u.nbytes for u in self.units.values()),
            "bytes_to_compute": self.bytes_in,
            "bytes_to_storage": self.bytes_out,
            "pinned": self.pinned,
        }

    def send_everything_to_storage(self) -> None:
        for unit in self.units.values():
            self._evict(unit)
        self._sync()

    # -- hooks -----------------------------------------------------------------------------------
    def _whole_hook(self, unit: _Unit):
        def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            self._use(unit, keep=())
            return _to_device(args, self.compute), _to_device(kwargs, self.compute)

        return hook

    def _block_hook(self, unit: _Unit):
        def hook(_module: torch.nn.Module, _args: tuple) -> None:
            following = self._next_block(unit.name) if self.prefetch else None
            self._use(unit, keep=(following,) if following else ())
            self._running.append(unit.name)
            if following is not None:
                self._bring(self.units[following], wait=False)

        return hook

    def _unet_started(self, _module: torch.nn.Module, _args: tuple) -> None:
        self._running = []

    def _unet_finished(self, _module: torch.nn.Module, _args: tuple, _output: Any) -> None:
        """Every block back to storage after the call (also when it failed), so nothing patches a
        block while it is on the GPU; the order seen is the prefetch order of the next call."""
        if self._running:
            self._order = self._running
        for unit in self.units.values():
            if unit.group == UNET_GROUP:
                self._evict(unit)

    def _next_block(self, name: str) -> str | None:
        order = self._order
        if name in order and order.index(name) + 1 < len(order):
            return order[order.index(name) + 1]
        return None

    # -- moving ----------------------------------------------------------------------------------
    def _use(self, unit: _Unit, keep: tuple[str, ...]) -> None:
        for other in self.units.values():
            if other is not unit and other.name not in keep and other.state != "storage":
                self._evict(other)
        self._bring(unit, wait=True)

    def _bring(self, unit: _Unit, *, wait: bool) -> None:
        if unit.state == "storage":
            self._copy_in(unit)
        if wait and unit.state == "arriving":
            if unit.ready is not None:
                stream = torch.cuda.current_stream(self.compute)
                stream.wait_event(unit.ready)
                for tensor in unit.tensors:  # the allocator must not reuse it while compute reads it
                    tensor.data.record_stream(stream)
                unit.ready = None
            unit.state = "compute"
        self.peak_resident_bytes = max(self.peak_resident_bytes, self.resident_bytes())

    def _copy_in(self, unit: _Unit) -> None:
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(self.compute))
            with torch.cuda.stream(self.stream):
                self._swap_in(unit)
                unit.ready = torch.cuda.Event()
                unit.ready.record(self.stream)
        else:
            self._swap_in(unit)
        unit.state = "arriving"
        self.bytes_in += unit.nbytes
        self.moves.append(Move(unit.name, "compute", unit.nbytes))

    def _swap_in(self, unit: _Unit) -> None:
        for tensor in unit.tensors:
            host = tensor.data
            unit.host[id(tensor)] = host
            tensor.data = host.to(self.compute, non_blocking=self.pinned)
            unit.versions[id(tensor)] = tensor._version

    def _evict(self, unit: _Unit) -> None:
        if unit.state == "storage":
            return
        if unit.ready is not None:  # a prefetch that was never used: let it finish first
            torch.cuda.current_stream(self.compute).wait_event(unit.ready)
            unit.ready = None
        for tensor in unit.tensors:
            host = unit.host.pop(id(tensor), None)
            changed = tensor._version != unit.versions.pop(id(tensor), None)
            if host is None or host.dtype != tensor.dtype or host.shape != tensor.shape:
                # not swapped in by us, or recast while on the compute device (the VAE's fp32 fallback):
                # the new tensor goes to storage as it is
                tensor.data = _to_storage(tensor.data, self.storage, self.pinned)
                continue
            if changed and host.data_ptr() != tensor.data.data_ptr():
                host.copy_(tensor.data)  # patched while on the compute device: keep the change
            tensor.data = host
        unit.state = "storage"
        self.bytes_out += unit.nbytes
        self.moves.append(Move(unit.name, "storage", unit.nbytes))

    def _sync(self) -> None:
        if self.compute.type == "cuda":
            torch.cuda.synchronize(self.compute)


def attach(
    model: SDModel,
    policy: Policy,
    storage: torch.device | str,
    compute: torch.device | str,
    *,
    prefetch: bool | None = None,
) -> Offloader | None:
    """Put `model` under `policy` (detaching any previous offloader first); returns the offloader,
    None for "none". Sets `execution_device` and `extra["offload"]`."""
    detach(model)
    model.execution_device = torch.device(compute)
    model.extra["offload"] = policy
    if policy == "none":
        return None
    offloader = Offloader(storage, compute, policy, prefetch=prefetch)
    for index, spec in enumerate(model.text_encoders):
        offloader.add(f"text_encoder_{index}", spec.model)
    if policy == "low":
        offloader.add_streamed_unet(model.unet)
    else:
        offloader.add("unet", model.unet)
    entry_points = [m for m in (getattr(model.vae, n, None) for n in _VAE_ENTRY_POINTS) if m is not None]
    offloader.add("vae", model.vae, entry_points=entry_points)
    model.extra[OFFLOADER_KEY] = offloader
    return offloader


def detach(model: SDModel) -> None:
    """Take `model` out of any offload policy; its weights stay where the offloader stored them."""
    offloader = model.extra.pop(OFFLOADER_KEY, None)
    if offloader is not None:
        offloader.detach()
    model.extra["offload"] = "none"


def offloader_of(model: Any) -> Offloader | None:
    extra = getattr(model, "extra", None)
    return extra.get(OFFLOADER_KEY) if isinstance(extra, dict) else None


def park_in_host_memory(model: SDModel, *, pinned: bool) -> None:
    """Every weight of `model` to host RAM; `pinned` (for CUDA) makes the next move to the GPU a fast
    asynchronous copy, so a warm checkpoint switch costs a copy, not a file read."""
    detach(model)
    for module in model.modules():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type != "cpu" or (pinned and not tensor.is_pinned()):
                tensor.data = _to_storage(tensor.data, torch.device("cpu"), pinned)


def is_pinned(model: SDModel) -> bool:
    """Whether every weight of `model` is in pinned host memory."""
    return all(p.is_pinned() for m in model.modules() for p in m.parameters())


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _to_storage(tensor: torch.Tensor, storage: torch.device, pinned: bool) -> torch.Tensor:
    if not pinned:
        return tensor.to(storage)
    host = torch.empty_like(tensor, device="cpu", pin_memory=True)
    host.copy_(tensor)
    return host


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device) if value.device != device else value
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value
