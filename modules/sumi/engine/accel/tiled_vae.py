"""Tiled VAE encode and decode: large images through the VAE in overlapping tiles, blended linearly.

A plain VAE decode of a 2048x2048 image holds several 256-channel full-resolution activations at once
(gigabytes); a tile holds a tile's worth. Each tile is run with `overlap` latent pixels of context
around it (cut off afterwards) so its edge convolutions see what the plain pass sees. Tiles can still
differ where each normalises its own GroupNorm statistics; optionally the statistics are estimated once
for the whole image (the VAE run on the input shrunk to one tile's size, as the multidiffusion-upscaler
extension's fast mode does) and every
tile is normalised with them (`TilingPolicy.estimate_norms`; with the statistics of the whole image,
tiles equal the plain pass). What is left between tiles is the mid-block's attention, which sees one
tile and its context instead of the whole image; the overlap's linear blend hides it.

`run` decides per call: "Never" (plain), "Always" (tiled), "Auto" (tiled when the plain pass's
estimated memory exceeds what the device has free), and a plain pass that runs out of memory is
retried in tiles. The caller learns what happened from the `Tiled` events it passes a list for.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from modules.sumi.engine.accel import memory

log = logging.getLogger(__name__)

MODES = ("Auto", "Always", "Never")
Stage = Literal["decode", "encode"]
FreeMemory = Callable[[torch.device], int]
# Live full-resolution activations of the widest layer in a plain pass (input kept for the residual,
# normalised, activated, convolved, plus the allocator's slack): a conservative guess, to be checked
# with bench/tiled_vae_memory.py on a GPU (docs/performance/tiled-vae.md).
ACTIVATION_FACTOR = 5.0


@dataclass(frozen=True)
class TilingPolicy:
    """How the VAE is tiled. `tile` and `overlap` are in latent pixels (8 image pixels each for SD)."""

    mode: str = "Auto"
    tile: int = 64
    overlap: int = 16
    # One set of GroupNorm statistics for every tile, from a pass over the input shrunk to `stats_size`
    # latent pixels a side (None: the tile size). Off by default: see docs/performance/tiled-vae.md.
    estimate_norms: bool = False
    stats_size: int | None = None
    free_memory: FreeMemory | None = None  # None: accel.memory.free_bytes
    # The encoder's own tile size and statistics choice (the Tiled VAE extension sets them apart);
    # None: as the decoder's.
    encode_tile: int | None = None
    encode_estimate_norms: bool | None = None
    # The extension's "fast encoder colour fix": the encoder's estimate reaches only the GroupNorms before
    # its first downsample (full resolution); the deeper ones take each tile's own statistics.
    encode_color_fix: bool = False

    def tile_for(self, stage: Stage) -> int:
        return self.encode_tile if stage == "encode" and self.encode_tile else self.tile

    def estimates_norms(self, stage: Stage) -> bool:
        if stage == "encode" and self.encode_estimate_norms is not None:
            return self.encode_estimate_norms
        return self.estimate_norms

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"tiled VAE mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.tile < 8:
            raise ValueError(f"tiled VAE tile size must be at least 8 latent pixels, got {self.tile}")
        if self.encode_tile is not None and self.encode_tile < 8:
            raise ValueError(
                f"tiled VAE encoder tile size must be at least 8 latent pixels, got {self.encode_tile}"
            )
        if not 0 <= self.overlap <= min(self.tile, self.encode_tile or self.tile) // 2:
            raise ValueError(
                f"tiled VAE overlap must be between 0 and half the tile size ({self.tile // 2}), "
                f"got {self.overlap}"
            )


NEVER = TilingPolicy(mode="Never")


@dataclass(frozen=True)
class Tiled:
    """One VAE pass that ran in tiles, and why ("always", "auto", "out of memory")."""

    stage: Stage
    reason: str
    tile: int
    overlap: int

    def message(self) -> str:
        if self.reason == "out of memory":
            return (
                f"The VAE ran out of memory in the {self.stage} of the whole image, so it ran again in "
                f"tiles of {self.tile} latent pixels (Settings > VAE > Tiled VAE)."
            )
        return (
            f"VAE {self.stage} in tiles of {self.tile} latent pixels, overlap {self.overlap} ({self.reason})"
        )


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, and the CPU allocator's refusal (a RuntimeError saying so)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def run(
    stage: Stage,
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    policy: TilingPolicy | None,
    vae: nn.Module,
    scale: int,
    events: list[Tiled] | None = None,
) -> torch.Tensor:
    """`fn(x)` plainly or in tiles, as `policy` says (None: plain, no retry). For "decode" x is latents
    and the output is `scale` times larger; for "encode" x is pixels and the output `scale` times smaller."""
    if policy is None or policy.mode == "Never":
        return fn(x)
    grid = _grid(x, stage, scale)
    fits_one_tile = max(grid) <= policy.tile_for(stage)
    if policy.mode == "Always" and not fits_one_tile:
        return _tiled(stage, fn, x, policy, vae, scale, "always", events)
    if policy.mode == "Auto" and not fits_one_tile:
        need = estimate_bytes(vae, stage, x, scale)
        free = (policy.free_memory or memory.free_bytes)(x.device)
        if need > free:
            log.info("VAE %s needs about %d MiB, %d MiB free: tiled", stage, need >> 20, free >> 20)
            return _tiled(stage, fn, x, policy, vae, scale, "auto", events)
    try:
        return fn(x)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error) or fits_one_tile:
            raise
        log.warning("VAE %s ran out of memory (%s): retrying in tiles", stage, str(error).splitlines()[0])
    empty_cache(x.device)  # outside the except block: the error's frames no longer pin the activations
    return _tiled(stage, fn, x, policy, vae, scale, "out of memory", events)


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _tiled(
    stage: Stage,
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    policy: TilingPolicy,
    vae: nn.Module,
    scale: int,
    reason: str,
    events: list[Tiled] | None,
) -> torch.Tensor:
    event = Tiled(stage, reason, policy.tile_for(stage), policy.overlap)
    log.info("%s", event.message())
    if events is not None:
        events.append(event)
    return tiled(
        fn,
        x,
        scale_in=1 if stage == "decode" else scale,
        scale_out=scale if stage == "decode" else 1,
        tile=policy.tile_for(stage),
        overlap=policy.overlap,
        norms=vae if policy.estimates_norms(stage) else None,
        stats_size=policy.stats_size,
        full_resolution_norms_only=stage == "encode" and policy.encode_color_fix,
    )


# -- the tiling itself -------------------------------------------------------------------------------


def tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale_in: int,
    scale_out: int,
    tile: int,
    overlap: int,
    norms: nn.Module | None = None,
    stats_size: int | None = None,
    full_resolution_norms_only: bool = False,
) -> torch.Tensor:
    """`fn` over overlapping tiles of `x`, blended. Tiles are laid on a grid of cells (latent pixels):
    a cell is `scale_in` input pixels and `scale_out` output pixels. Neighbouring tiles share `overlap`
    cells, blended linearly, and each tile is run with `overlap` more cells of context on every side
    (cut off afterwards), so the convolutions near its edges see what the plain pass sees. With `norms`,
    the GroupNorm layers in that module use statistics estimated on the whole input shrunk to
    `stats_size` cells a side (default: one tile); with `full_resolution_norms_only` only those that run
    at the input's resolution, the rest with each tile's own."""
    grid = (x.shape[-2] // scale_in, x.shape[-1] // scale_in)
    rows, cols = spans(grid[0], tile, overlap), spans(grid[1], tile, overlap)
    stats = (
        None
        if norms is None
        else _estimate_stats(fn, x, norms, (stats_size or tile) * scale_in, full_resolution_norms_only)
    )
    out: torch.Tensor | None = None
    total: torch.Tensor | None = None
    with _normalised_by(norms, stats) as before_tile:
        for row in rows:
            for col in cols:
                before_tile()
                (top, bottom), (left, right) = (
                    _context(row, grid[0], overlap),
                    _context(col, grid[1], overlap),
                )
                piece = fn(x[..., top * scale_in : bottom * scale_in, left * scale_in : right * scale_in])
                piece = piece[  # the tile's own span, without the context around it
                    ...,
                    (row[0] - top) * scale_out : (row[1] - top) * scale_out,
                    (col[0] - left) * scale_out : (col[1] - left) * scale_out,
                ]
                if out is None:  # the output's channels and dtype come from the first tile
                    shape = (*piece.shape[:2], grid[0] * scale_out, grid[1] * scale_out)
                    out = torch.zeros(shape, dtype=torch.float32, device=piece.device)
                    total = torch.zeros((1, 1, *shape[-2:]), dtype=torch.float32, device=piece.device)
                weight = _weights(row, col, rows, cols, overlap, scale_out, piece.device)
                rs = slice(row[0] * scale_out, row[1] * scale_out)
                cs = slice(col[0] * scale_out, col[1] * scale_out)
                out[..., rs, cs] += piece.float() * weight
                assert total is not None
                total[..., rs, cs] += weight
                del piece
    assert out is not None and total is not None
    return (out / total).to(x.dtype if x.is_floating_point() else torch.float32)


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of tiles of `tile` cells covering `length`, neighbours sharing at least `overlap`."""
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    count = math.ceil((length - overlap) / stride)
    starts = [min(i * stride, length - tile) for i in range(count)]
    return [(s, s + tile) for s in dict.fromkeys(starts)]


def _context(span: tuple[int, int], length: int, pad: int) -> tuple[int, int]:
    """The span with `pad` cells of context on each side, inside the image."""
    return max(0, span[0] - pad), min(length, span[1] + pad)


def _ramp(
    span: tuple[int, int], all_spans: Sequence[tuple[int, int]], overlap: int, scale: int
) -> torch.Tensor:
    """1-D blend weights of one tile: rising over its overlap with the previous tile, falling over the
    next's; never zero, so every pixel has weight."""
    start, end = span
    size = (end - start) * scale
    weight = torch.ones(size)
    index = all_spans.index(span)
    if overlap <= 0:
        return weight
    if index > 0:
        shared = (all_spans[index - 1][1] - start) * scale
        weight[:shared] = torch.minimum(weight[:shared], (torch.arange(shared) + 0.5) / shared)
    if index < len(all_spans) - 1:
        shared = (end - all_spans[index + 1][0]) * scale
        tail = torch.flip((torch.arange(shared) + 0.5) / shared, (0,))
        weight[size - shared :] = torch.minimum(weight[size - shared :], tail)
    return weight


def _weights(
    row: tuple[int, int],
    col: tuple[int, int],
    rows: Sequence[tuple[int, int]],
    cols: Sequence[tuple[int, int]],
    overlap: int,
    scale: int,
    device: torch.device,
) -> torch.Tensor:
    return torch.outer(_ramp(row, rows, overlap, scale), _ramp(col, cols, overlap, scale)).to(device)


# -- GroupNorm statistics shared by every tile -----------------------------------------------------------

# per GroupNorm call, in call order: (mean, var) (B, G); None: that call uses its tile's own statistics
Stats = list[tuple[torch.Tensor, torch.Tensor] | None]


def _estimate_stats(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    module: nn.Module,
    size: int,
    full_resolution_only: bool = False,
) -> Stats:
    """Run `fn` once on `x` shrunk to fit `size` pixels a side and record every GroupNorm's statistics
    (with `full_resolution_only`, those of calls on a smaller map than the first call's are left out)."""
    height, width = x.shape[-2:]
    factor = min(1.0, size / max(height, width))
    small = x
    if factor < 1.0:
        shape = (max(1, round(height * factor)), max(1, round(width * factor)))
        small = F.interpolate(
            x, size=shape, mode="nearest-exact"
        )  # keeps the values' spread; "area" would shrink it
    stats: Stats = []
    sizes: list[tuple[int, ...]] = []

    def record(module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
        groups = cast(nn.GroupNorm, module).num_groups
        flat = args[0].float().reshape(args[0].shape[0], groups, -1)
        var, mean = torch.var_mean(flat, dim=-1, unbiased=False)
        sizes.append(tuple(args[0].shape[2:]))
        stats.append((mean, var))

    handles = [m.register_forward_hook(record) for m in _group_norms(module)]
    try:
        fn(small)
    finally:
        for handle in handles:
            handle.remove()
    if full_resolution_only and sizes:
        return [entry if size == sizes[0] else None for entry, size in zip(stats, sizes, strict=True)]
    return stats


@contextlib.contextmanager
def _normalised_by(module: nn.Module | None, stats: Stats | None) -> Iterator[Callable[[], None]]:
    """While open, the k-th GroupNorm call of each tile normalises by `stats[k]` instead of its own
    input's; the yielded function starts a new tile."""
    if module is None or stats is None:
        yield lambda: None
        return
    calls = [0]

    def apply(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        norm = cast(nn.GroupNorm, module)
        index = calls[0]
        calls[0] += 1
        entry = stats[index] if index < len(stats) else None
        if entry is None:  # a call the estimate did not see, or left out: its own statistics
            return output
        mean, var = entry
        x = args[0]
        flat = x.float().reshape(x.shape[0], norm.num_groups, -1)
        normed = ((flat - mean[..., None]) * torch.rsqrt(var[..., None] + norm.eps)).reshape(x.shape)
        if norm.affine:
            shape = (1, -1) + (1,) * (x.dim() - 2)
            normed = normed * norm.weight.float().reshape(shape) + norm.bias.float().reshape(shape)
        return normed.to(output.dtype)

    def new_tile() -> None:
        calls[0] = 0

    handles = [m.register_forward_hook(apply) for m in _group_norms(module)]
    try:
        yield new_tile
    finally:
        for handle in handles:
            handle.remove()


def _group_norms(module: nn.Module) -> list[nn.GroupNorm]:
    return [m for m in module.modules() if isinstance(m, nn.GroupNorm)]


# -- how much a plain pass needs -----------------------------------------------------------------------


def _grid(x: torch.Tensor, stage: Stage, scale: int) -> tuple[int, int]:
    """The input's size in latent pixels."""
    height, width = x.shape[-2:]
    return (height, width) if stage == "decode" else (height // scale, width // scale)


def estimate_bytes(vae: nn.Module, stage: Stage, x: torch.Tensor, scale: int) -> int:
    """Peak bytes a plain pass of `x` through `vae` needs: ACTIVATION_FACTOR times its widest
    activation (channels x pixels at each level of the encoder or decoder) at the VAE's dtype."""
    config: Any = getattr(vae, "config", {})
    channels = list(config.get("block_out_channels", (128, 256, 512, 512)))
    batch = x.shape[0]
    height, width = _grid(x, stage, scale)
    widest = 0
    levels = len(channels)
    for level, width_channels in enumerate(channels):  # level 0: full resolution
        pixels = (height * 2 ** (levels - 1 - level)) * (width * 2 ** (levels - 1 - level))
        # a level's first layer still has the neighbouring level's channels at this resolution
        neighbour = channels[min(level + 1, levels - 1)] if stage == "decode" else channels[max(level - 1, 0)]
        widest = max(widest, max(width_channels, neighbour) * pixels)
    itemsize = torch.empty((), dtype=_dtype(vae)).element_size()
    return int(ACTIVATION_FACTOR * widest * batch * itemsize)


def _dtype(module: nn.Module) -> torch.dtype:
    dtype = getattr(module, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32
