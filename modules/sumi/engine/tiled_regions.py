"""Region prompt control for Tiled Diffusion (the multidiffusion-upscaler extension's bbox control):
rectangles of the canvas, each drawn by the UNet with its own prompt and negative prompt (appended to the
batch's, as the extension does), starting from its own seed's noise, and blended into the picture:

- Background regions count as tiles: their predictions are averaged with the grid's (MultiDiffusion) or
  weighted by a Gaussian of the region's size (Mixture of Diffusers).
- Foreground regions are laid over that result with a feather mask (1 inside, falling as the square of
  the distance to the region's edge within `feather` x half the shorter side); overlapping foregrounds are
  averaged.

Without the background drawn (`draw_background` off) only the regions are drawn: a pixel no region covers
gets a zero prediction, as in the extension, so such regions should cover the canvas.

Positions are fractions of the canvas, so one set of regions fits every pass (hires fix too); in latent
pixels a region starts at int(x * width) and spans ceil(w * width), cut to the canvas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor

from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import JobConditioning, pick, stack_rows

BLEND_MODES = ("Background", "Foreground")


@dataclass(frozen=True)
class Region:
    """One rectangle of the canvas (x, y, width, height as fractions of it) and what draws it."""

    x: float
    y: float
    width: float
    height: float
    prompt: str = ""
    negative_prompt: str = ""
    blend_mode: str = "Background"
    feather: float = 0.2  # Foreground: the share of half the shorter side that fades in
    seed: int = 0  # the seed of the region's starting noise

    def __post_init__(self) -> None:
        if self.blend_mode not in BLEND_MODES:
            raise ValueError(f"region type '{self.blend_mode}' is not one of {', '.join(BLEND_MODES)}")
        if not 0 <= self.feather <= 1:
            raise ValueError(f"region feather {self.feather} is not between 0 and 1")

    @property
    def foreground(self) -> bool:
        return self.blend_mode == "Foreground"

    def span(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """(x, y, w, h) in the pixels of a width x height map, as the extension rounds them; None when
        nothing of the region lies on it."""
        x, y = max(int(self.x * width), 0), max(int(self.y * height), 0)
        w = min(width - x, math.ceil(self.width * width))
        h = min(height - y, math.ceil(self.height * height))
        return (x, y, w, h) if w > 0 and h > 0 else None


def with_addition(texts: Sequence[str], addition: str) -> list[str]:
    """The batch's prompts with a region's text appended (the extension's `append_prompt`)."""
    return [f"{text}, {addition}" if addition else text for text in texts]


@cache
def feather_mask(width: int, height: int, ratio: float) -> Tensor:
    """1 inside, (d / r)² within r = int(ratio x half the shorter side) of the nearest edge, d counted in
    whole pixels from 0 at the edge (the extension's mask; it leaves an odd size's middle row and column
    at 1 all the way to the edge, here they fade like the rest). Read-only: callers copy it."""
    radius = int(min(width // 2, height // 2) * ratio)
    if radius == 0:
        return torch.ones(height, width)
    rows = torch.arange(height)
    columns = torch.arange(width)
    from_top = torch.minimum(rows, height - 1 - rows)
    from_side = torch.minimum(columns, width - 1 - columns)
    distance = torch.minimum(from_top[:, None], from_side[None, :]).double()
    return torch.where(distance < radius, (distance / radius) ** 2, 1.0).float()


def region_noise(noise: Tensor, regions: Sequence[Region]) -> Tensor:
    """The starting noise with each region's own: torch's CPU generator seeded with the region's seed
    draws [1, C, h, w] (every image of the batch gets it); overlapping background regions average theirs,
    foreground regions go over them, as the extension's `create_random_tensors`."""
    height, width = noise.shape[-2:]
    layers = {False: torch.zeros_like(noise[:1]), True: torch.zeros_like(noise[:1])}
    counts = {key: torch.zeros((1, 1, height, width), device=noise.device) for key in layers}
    for region in regions:
        span = region.span(width, height)
        if span is None:
            continue
        x, y, w, h = span
        drawn = torch.randn((1, noise.shape[1], h, w), generator=torch.Generator().manual_seed(region.seed))
        layers[region.foreground][..., y : y + h, x : x + w] += drawn.to(noise.device, noise.dtype)
        counts[region.foreground][..., y : y + h, x : x + w] += 1
    out = noise
    for key in (False, True):
        average = layers[key] / counts[key].clamp_min(1)
        out = torch.where(counts[key] > 0, average.to(noise.dtype), out)
    return out


@dataclass(frozen=True)
class RowRoles:
    """Who the rows of one UNet forward are: the image each belongs to and whether it is a cond row (the
    AND parts of an image's cond rows come in order), at which model call."""

    images: tuple[int, ...]
    is_cond: tuple[bool, ...]
    step: int


def row_conditioning(texts: JobConditioning, roles: RowRoles) -> list[Conditioning]:
    """A region's encoded texts for every row: cond rows take their image's AND part, uncond rows the
    image's negative prompt, each as scheduled at the call's step."""
    seen: dict[int, int] = {}
    rows = []
    for image, is_cond in zip(roles.images, roles.is_cond, strict=True):
        if is_cond:
            part = seen.get(image, 0)
            seen[image] = part + 1
            parts = texts.conds[image].parts
            rows.append(pick(parts[min(part, len(parts) - 1)][1], roles.step).cond)
        else:
            rows.append(pick(texts.unconds[image], roles.step).cond)
    return rows


def row_groups(rows: list[Conditioning], roles: RowRoles) -> list[tuple[list[int], Conditioning]]:
    """The rows as UNet batches: cond rows are stacked together and uncond rows together (A1111 pads the
    rows of one kind to one length); the two kinds share one batch when their lengths agree, else run
    apart, as the denoiser does."""
    kinds = [[i for i, c in enumerate(roles.is_cond) if c == kind] for kind in (True, False)]
    stacks = [(index, stack_rows([rows[i] for i in index])) for index in kinds if index]
    if len(stacks) == 2 and stacks[0][1].context.shape[1] == stacks[1][1].context.shape[1]:
        order = stacks[0][0] + stacks[1][0]
        back = sorted(range(len(order)), key=order.__getitem__)
        context = torch.cat([stacks[0][1].context, stacks[1][1].context])[back]
        first, second = (s.pooled for _, s in stacks)
        joined = None if first is None or second is None else torch.cat([first, second])[back]
        return [(list(range(len(rows))), Conditioning(context, joined))]
    return stacks
