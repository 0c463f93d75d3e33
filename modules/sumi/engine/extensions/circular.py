"""Seamless tiling: every 2-D convolution pads circularly, so the picture wraps around its edges.

A1111 (`p.tiling`, `sd_hijack.apply_circular`) switches every `Conv2d` of the whole model (UNet and
both halves of the VAE) to `padding_mode="circular"` and leaves it so until a job without tiling.
Here the change is a patch scope: `CircularPadding` records each convolution's own mode before it
changes it and puts exactly that back on exit, also when the block raises or is interrupted, so a
failed job never leaves a tiling model behind. `Tiling` is the same patch as an engine `Extension`
(model + any extra modules, e.g. the batch's ControlNet models) for callers of `engine.generate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType

from torch import nn

from modules.sumi.engine.extensions.hooks import Extension
from modules.sumi.engine.extensions.patches import PatchScope
from modules.sumi.engine.model import SDModel

CIRCULAR = "circular"


class CircularPadding:
    """Circular padding on every `Conv2d` of the modules added, until `restore()` (or the `with` exit).

    Adding a module twice, or a module inside one already added, changes nothing more; `restore()`
    gives every convolution back the mode it had when it was first changed."""

    def __init__(self, modules: Iterable[nn.Module | None] = ()) -> None:
        self._saved: dict[int, tuple[nn.Conv2d, str]] = {}
        self.add(*modules)

    def __enter__(self) -> CircularPadding:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.restore()

    def __len__(self) -> int:
        return len(self._saved)

    def add(self, *modules: nn.Module | None) -> None:
        """Switch every convolution of `modules` (None entries are skipped) to circular padding."""
        for module in modules:
            if module is None:
                continue
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d) and id(layer) not in self._saved:
                    self._saved[id(layer)] = (layer, layer.padding_mode)
                    layer.padding_mode = CIRCULAR

    def restore(self) -> None:
        """Every changed convolution back to its own padding mode."""
        saved, self._saved = self._saved, {}
        for layer, mode in saved.values():
            layer.padding_mode = mode  # pyright: ignore[reportAttributeAccessIssue] (the layer's own mode)


def model_modules(model: SDModel) -> list[nn.Module]:
    """The parts of a model tiling changes: the UNet and the VAE (encoder and decoder), as A1111."""
    return [model.unet, model.vae]


@contextmanager
def circular_padding(*modules: nn.Module | None) -> Iterator[CircularPadding]:
    """`with circular_padding(model.unet, model.vae) as tiles:` ... `tiles.add(controlnet)` ..."""
    with CircularPadding(modules) as patch:
        yield patch


class Tiling(Extension):
    """The tiling patch for one batch: the model's UNet and VAE, and `extra` modules (ControlNets)."""

    def __init__(self, extra: Iterable[nn.Module] = ()) -> None:
        super().__init__()
        self.extra = list(extra)

    def patch(self, scope: PatchScope) -> CircularPadding:
        return CircularPadding([*model_modules(scope.model), *self.extra])
