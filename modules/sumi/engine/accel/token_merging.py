"""Token merging (ToMe for Stable Diffusion, `tomesd`): A1111's "Token merging ratio" optimization.

Before each transformer block's self-attention, a share (`ratio`) of the image's tokens are merged
into their most similar neighbours and split back after, so self-attention sees fewer tokens: faster,
at some cost in detail. It applies, as in A1111, to the blocks at full latent resolution only
(tomesd's `max_downsample` 1), without random partitions (`use_rand=False`), to self-attention only.
A1111 applies it with `tomesd.apply_patch` to its model and leaves it there; here it is a patch
scope on the job's UNet (`TokenMerging`), removed exactly when the batch ends, also on failure.

tomesd is an optional package: without it a ratio above 0 is refused with the pip command. A job with
token merging runs its UNet eager (the compiled graphs were traced without it).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from torch import nn

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions.hooks import Extension
from modules.sumi.engine.extensions.patches import PatchScope

MAX_RATIO = 0.9  # A1111's slider; tomesd merges at most 1 - 1/(sx*sy) = 0.75 of the tokens per stride
MISSING = "Token merging needs the tomesd package: pip install tomesd==0.1.3"
_INFO = "_tome_info"


def _tomesd() -> ModuleType:
    try:
        return importlib.import_module("tomesd")
    except ImportError as error:
        raise InvalidRequestError(MISSING) from error


def available() -> bool:
    return importlib.util.find_spec("tomesd") is not None


def is_merging(unet: nn.Module) -> bool:
    """Whether token merging is on for this UNet now."""
    return any(type(module).__name__ == "ToMeBlock" for module in unet.modules())


@contextmanager
def token_merging(unet: nn.Module, ratio: float) -> Iterator[None]:
    """The UNet merges tokens at `ratio` inside the block; exactly as before after it."""
    if not 0 < ratio <= MAX_RATIO:
        raise InvalidRequestError(
            f"the token merging ratio must be above 0 and at most {MAX_RATIO}, got {ratio}"
        )
    tomesd = _tomesd()
    tomesd.apply_patch(
        unet, ratio=ratio, use_rand=False, merge_attn=True, merge_crossattn=False, merge_mlp=False
    )
    _size_from_conv_in(unet)
    try:
        yield
    finally:
        tomesd.remove_patch(unet)
        for module in unet.modules():  # tomesd leaves its state on every block it patched
            if _INFO in vars(module):
                delattr(module, _INFO)


def _size_from_conv_in(unet: nn.Module) -> None:
    """tomesd reads the latent size from a hook on the UNet's call; Tiled Diffusion calls the UNet's
    forward per tile without it, so the size is taken where every call starts, at `conv_in`."""
    info = getattr(unet, _INFO)
    for handle in info["hooks"]:
        handle.remove()
    info["hooks"].clear()

    def record(module: nn.Module, args: tuple) -> None:
        info["size"] = (args[0].shape[2], args[0].shape[3])

    conv_in = getattr(unet, "conv_in", None)
    target = conv_in if isinstance(conv_in, nn.Module) else unet
    info["hooks"].append(target.register_forward_pre_hook(record))


class TokenMerging(Extension):
    """Token merging on the job's UNet for one batch (engine.generate adds it for `token_merging_ratio`)."""

    def __init__(self, ratio: float) -> None:
        super().__init__()
        self.ratio = ratio

    def patch(self, scope: PatchScope):
        return token_merging(scope.model.unet, self.ratio)
