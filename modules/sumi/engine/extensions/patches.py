"""Patch scopes: what extensions change on the model lasts exactly as long as the scope.

`ExtensionManager.patched(model)` enters every extension's `patch(scope)` on one ExitStack and leaves
them in reverse order; each patch restores what it changed, also when the block raises (an error, a
KeyboardInterrupt). `WeightBackups` is the tool for in-place weight changes: it keeps the pristine
tensor of every parameter it is asked to change and copies it back bit-exactly.

Resident patches: a patch that is costly to apply (LoRA deltas) may stay on the model after a scope
that *completed* (`scope.completed`, set by its owner when sampling ran to the end), handing the scope a
`release` function. The next scope on that model releases it on entry (bit-exact restore) unless one of
its extensions claims the same `resident_key` and takes it over, so consecutive jobs with the same
networks cost nothing and a job without them always starts from pristine weights. An interrupted or
failed scope never leaves anything behind. `release_residents(model)` cleans a model at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from types import TracebackType

import torch
from torch import Tensor

from modules.sumi.engine.model import SDModel

Release = Callable[[], None]
_RESIDENT = "resident_patches"


class PatchScope:
    """The scope extensions patch: its model, and whether the work inside it completed."""

    def __init__(self, model: SDModel) -> None:
        self.model = model
        self.completed = False  # set by the scope's owner once the batch ran to the end

    def keep_resident(self, key: str, release: Release) -> None:
        """Leave a patch applied after this scope; `release()` must restore it exactly."""
        resident_patches(self.model)[key] = release


def resident_patches(model: SDModel) -> dict[str, Release]:
    """The patches left applied on `model` by completed scopes, by resident key."""
    return model.extra.setdefault(_RESIDENT, {})


def claim_resident(model: SDModel, key: str) -> Release | None:
    """Take over the resident patch `key` (the caller now owns it); None when there is none."""
    return resident_patches(model).pop(key, None)


def release_residents(model: SDModel, keep: Collection[str] = ()) -> None:
    """Restore every resident patch of `model` except those in `keep`."""
    held = resident_patches(model)
    for key in [k for k in held if k not in keep]:
        held.pop(key)()


class WeightBackups:
    """Pristine copies of parameters changed in place, restored bit-exactly.

    Backups live on `device` ("cpu" by default: no VRAM; None keeps them beside the weights). Use it as a
    context manager to restore everything on exit, or call `restore(key)` / `restore_all()`.
    """

    def __init__(self, device: str | torch.device | None = "cpu") -> None:
        self.device = device
        self._saved: dict[str, dict[str, tuple[torch.nn.Module, Tensor]]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._saved

    def __enter__(self) -> WeightBackups:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.restore_all()

    @property
    def keys(self) -> list[str]:
        return list(self._saved)

    def save(self, key: str, module: torch.nn.Module, name: str) -> Tensor:
        """Keep the pristine `module.<name>` (only the first time) and return that copy."""
        saved = self._saved.setdefault(key, {})
        if name not in saved:
            param = getattr(module, name)
            device = param.device if self.device is None else self.device
            saved[name] = (module, param.detach().to(device, copy=True))
        return saved[name][1]

    def original(self, key: str, name: str) -> Tensor | None:
        """The saved pristine tensor, or None when it was never changed."""
        entry = self._saved.get(key, {}).get(name)
        return None if entry is None else entry[1]

    @torch.no_grad()
    def replace(self, key: str, module: torch.nn.Module, name: str, value: Tensor) -> None:
        """Back `module.<name>` up, then overwrite it in place with `value`."""
        self.save(key, module, name)
        getattr(module, name).copy_(value)

    @torch.no_grad()
    def restore(self, key: str) -> None:
        """Copy back the pristine tensors saved under `key` and forget them."""
        for name, (module, original) in self._saved.pop(key, {}).items():
            getattr(module, name).copy_(original)

    def restore_all(self) -> None:
        for key in list(self._saved):
            self.restore(key)

    def forget_all(self) -> None:
        """Drop every backup: the current tensors become the originals."""
        self._saved.clear()
