"""Tiled Diffusion: the UNet run on overlapping latent tiles whose predictions are blended, so an image
larger than the model's training size is drawn tile by tile (memory of one tile batch) and stays one
image (every step blends the overlaps).

- MultiDiffusion (Bar-Tal et al., 2023): each latent pixel's prediction is the plain mean of the tiles
  covering it.
- Mixture of Diffusers (Jiménez, 2023): the mean weighted by a Gaussian centred on each tile, so tile
  edges count less.

Both are linear in the prediction, so blending the UNet's raw output (noise, or v) equals blending the
denoised latents. The tiles follow the multidiffusion-upscaler extension's grid (`tile_boxes`): as few
tiles as cover the latent with at least `overlap` pixels shared, spread evenly. A latent no larger than a
tile is one tile: the job is then exactly a plain job.

`TiledDiffusion` is an engine extension: its patch wraps the UNet's forward for the scope, so every
UNet call of the job (each hires pass too, any sampler, AND, LoRA) is tiled. The ControlNet / T2I-Adapter
residuals a call carries are cut to each tile at their own resolution; other per-call inputs (text, SDXL
size embeddings, IP-Adapter tokens) are repeated for the tiles of a batch.

The same extension draws regions with their own prompts and seeds over (or instead of) the grid
(`engine.tiled_regions`), and for img2img may start from the picture's inverted noise
(`engine.noise_inversion`), computed with the tiled UNet before the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import (
    Extension,
    HookPoint,
    PatchScope,
    PromptEncoder,
    StartingNoise,
    UNetBatch,
    hook,
    ldm_blocks,
)
from modules.sumi.engine.host_values import send
from modules.sumi.engine.model import SDModel, compute_dtype
from modules.sumi.engine.noise_inversion import (
    CondForward,
    InversionCache,
    InversionSettings,
    invert,
    renoise_weights,
    starting_noise,
)
from modules.sumi.engine.sampling.schedules import ModelSigmas
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import JobConditioning, pick, stack_rows
from modules.sumi.engine.tiled_regions import (
    Region,
    RowRoles,
    feather_mask,
    region_noise,
    row_conditioning,
    row_groups,
    with_addition,
)

METHODS = ("MultiDiffusion", "Mixture of Diffusers")
# UNet keyword arguments whose tensors are spatial (cut per tile) and those repeated per tile.
_SPATIAL_LISTS = ("down_block_additional_residuals", "down_intrablock_additional_residuals")
_SPATIAL = ("mid_block_additional_residual",)
_KNOWN = {
    "encoder_hidden_states",
    "added_cond_kwargs",
    "return_dict",
    "timestep_cond",
    *_SPATIAL_LISTS,
    *_SPATIAL,
}


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    def window(self, scale: int = 1) -> tuple[slice, slice]:
        """(rows, columns) of this box in a map `scale` times smaller than the latent."""
        return (
            slice(self.y // scale, (self.y + self.height) // scale),
            slice(self.x // scale, (self.x + self.width) // scale),
        )


def tile_boxes(width: int, height: int, tile_width: int, tile_height: int, overlap: int) -> list[Box]:
    """The extension's grid over a width x height latent: ceil((size − overlap) / (tile − overlap)) tiles
    per side, spread evenly (the last one flush with the edge), row by row. A tile larger than the latent
    is cut to it; an overlap of a tile or more is cut to the smaller tile side − 4, as the extension does."""
    tile_width, tile_height = min(tile_width, width), min(tile_height, height)
    if overlap >= min(tile_width, tile_height):
        overlap = max(min(tile_width, tile_height) - 4, 0)
    columns = math.ceil((width - overlap) / (tile_width - overlap))
    rows = math.ceil((height - overlap) / (tile_height - overlap))
    dx = (width - tile_width) / (columns - 1) if columns > 1 else 0
    dy = (height - tile_height) / (rows - 1) if rows > 1 else 0
    return [
        Box(
            min(int(column * dx), width - tile_width),
            min(int(row * dy), height - tile_height),
            tile_width,
            tile_height,
        )
        for row in range(rows)
        for column in range(columns)
    ]


@cache
def gaussian_weights(tile_width: int, tile_height: int) -> Tensor:
    """Mixture of Diffusers' tile weights (its published form, which scales both axes by the width); built
    once per tile size (read-only: callers copy it to their device)."""

    def bell(position: float, middle: float, variance: float = 0.01) -> float:
        return math.exp(-((position - middle) ** 2) / (tile_width * tile_width) / (2 * variance)) / math.sqrt(
            2 * math.pi * variance
        )

    across = torch.tensor([bell(x, (tile_width - 1) / 2) for x in range(tile_width)], dtype=torch.float64)
    down = torch.tensor([bell(y, tile_height / 2) for y in range(tile_height)], dtype=torch.float64)
    return torch.outer(down, across).float()


@dataclass(frozen=True)
class TileSettings:
    method: str = "MultiDiffusion"
    tile_width: int = 96  # latent pixels (x8 in the image)
    tile_height: int = 96
    overlap: int = 48
    batch_size: int = 4  # tiles per UNet call

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"Tiled Diffusion method '{self.method}' is not one of {', '.join(METHODS)}")
        if min(self.tile_width, self.tile_height) < 8 or self.overlap < 0 or self.batch_size < 1:
            raise ValueError(
                "Tiled Diffusion needs tiles of at least 8 latent pixels, overlap ≥ 0, batch ≥ 1"
            )


def _repeat(value: Any, times: int) -> Any:
    """A per-row input for `times` tiles of the same rows (tensors along the batch, lists item by item)."""
    if times == 1:
        return value
    if isinstance(value, Tensor) and value.ndim > 0:
        return value.repeat(times, *[1] * (value.ndim - 1))
    if isinstance(value, (list, tuple)):
        return type(value)(_repeat(v, times) for v in value)
    if isinstance(value, dict):
        return {k: _repeat(v, times) for k, v in value.items()}
    return value


def _cut(tensor: Tensor, box: Box, latent_height: int) -> Tensor:
    return tensor[(..., *box.window(latent_height // tensor.shape[-2]))]


@dataclass
class RegionPass:
    """One region at one latent size: where it lies, its encoded texts, and how it blends."""

    region: Region
    box: Box
    texts: JobConditioning
    weight: Tensor | float  # Background: its weight among the tiles
    feather: Tensor | None  # Foreground: its feather mask


class TiledForward:
    """A UNet forward that runs `settings`' tiles (and the regions) through `forward` and blends them.
    Regions need `rows` (who each row of the forward is), set by the extension's UNET_FORWARD hook."""

    def __init__(
        self,
        forward: Callable[..., Any],
        settings: TileSettings,
        regions: Sequence[tuple[Region, JobConditioning]] = (),
        draw_background: bool = True,
    ) -> None:
        self.forward, self.settings = forward, settings
        self.regions, self.draw_background = list(regions), draw_background
        self.rows: RowRoles | None = None
        self._weights: dict[tuple[int, int, str, int], Tensor] = {}
        # per forward these would be rebuilt: the region passes per (size, device, regions), and each
        # region's stacked row texts per (its texts, the rows, the texts picked at the step, device, dtype)
        self._passes: dict[tuple[int, int, str, int], list[RegionPass]] = {}
        self._region_rows: dict[int, tuple[tuple, list[tuple[list[int], Conditioning]]]] = {}

    def __call__(self, sample: Tensor, timestep: Any, *args: Any, **kwargs: Any) -> Any:
        height, width = sample.shape[-2:]
        s = self.settings
        # Regions need to know who each row is (the sampler's calls); another UNet call is tiled plainly.
        regions = self.regions if self.rows is not None and len(self.rows.images) == sample.shape[0] else []
        draw = self.draw_background or not regions
        boxes = tile_boxes(width, height, s.tile_width, s.tile_height, s.overlap) if draw else []
        if (len(boxes) == 1 and not regions) or args:
            return self.forward(sample, timestep, *args, **kwargs)
        return_dict = kwargs.pop("return_dict", True)
        passes = self._region_passes(regions, height, width, sample.device)
        total = torch.zeros_like(sample, dtype=torch.float32)
        if boxes:
            self._grid(sample, timestep, kwargs, boxes, total)
        front = _Layer.empty(sample) if any(r.feather is not None for r in passes) else None
        for plan in passes:
            out = self._run_region(sample, timestep, kwargs, plan, height).float()
            if plan.feather is None:
                total[(..., *plan.box.window())] += out * plan.weight
            else:
                assert front is not None
                front.add(plan.box, out, plan.feather)
        weight = self._weight(boxes, passes, height, width, sample.device)
        blended = total / torch.where(weight > 0, weight, 1.0)
        if front is not None:
            blended = front.over(blended)
        blended = blended.to(sample.dtype)
        return (blended,) if not return_dict else _Output(blended)

    def _grid(self, sample: Tensor, timestep: Any, kwargs: dict, boxes: list[Box], total: Tensor) -> None:
        height = sample.shape[-2]
        # Unknown inputs may hold per-row state: their tiles go one at a time, so the rows stay as they are.
        per_call = self.settings.batch_size if set(kwargs) <= _KNOWN else 1
        tile_weight = self._tile_weight(boxes[0], sample.device)
        for start in range(0, len(boxes), per_call):
            group = boxes[start : start + per_call]
            out = self._run(sample, timestep, kwargs, group, height)
            for index, box in enumerate(group):
                rows = out[index * sample.shape[0] : (index + 1) * sample.shape[0]]
                total[(..., *box.window())] += rows.float() * tile_weight

    def _run(self, sample: Tensor, timestep: Any, kwargs: dict, group: list[Box], height: int) -> Tensor:
        tiles = torch.cat([sample[(..., *box.window())] for box in group])
        call = {k: v for k, v in kwargs.items() if k not in (*_SPATIAL_LISTS, *_SPATIAL)}
        call = _repeat(call, len(group))
        for name in _SPATIAL_LISTS:
            if kwargs.get(name) is not None:
                call[name] = [torch.cat([_cut(r, b, height) for b in group]) for r in kwargs[name]]
        for name in _SPATIAL:
            if kwargs.get(name) is not None:
                call[name] = torch.cat([_cut(kwargs[name], b, height) for b in group])
        step = _repeat(timestep, len(group)) if isinstance(timestep, Tensor) and timestep.ndim else timestep
        return self.forward(tiles, step, return_dict=False, **call)[0]

    def _run_region(
        self, sample: Tensor, timestep: Any, kwargs: dict, plan: RegionPass, height: int
    ) -> Tensor:
        """The region's rows with its own texts: one UNet batch, or cond and uncond apart when their
        token lengths differ."""
        roles = self.rows
        assert roles is not None, "regions run only on calls whose rows are known"
        tile = sample[(..., *plan.box.window())]
        out = torch.empty_like(tile)
        hidden = kwargs["encoder_hidden_states"]
        for index, context in self._row_texts(plan, roles, hidden):
            call = _rows_of(kwargs, index, sample.shape[0])
            for name in _SPATIAL_LISTS:
                if call.get(name) is not None:
                    call[name] = [_cut(r, plan.box, height) for r in call[name]]
            for name in _SPATIAL:
                if call.get(name) is not None:
                    call[name] = _cut(call[name], plan.box, height)
            call["encoder_hidden_states"] = context.context
            added = call.get("added_cond_kwargs")
            if added is not None and context.pooled is not None:
                embeds = added["text_embeds"]
                call["added_cond_kwargs"] = {
                    **added,
                    "text_embeds": context.pooled.to(embeds.device, embeds.dtype),
                }
            step = timestep[index] if isinstance(timestep, Tensor) and timestep.ndim else timestep
            out[index] = self.forward(tile[index], step, return_dict=False, **call)[0]
        return out

    def _row_texts(
        self, plan: RegionPass, roles: RowRoles, hidden: Tensor
    ) -> list[tuple[list[int], Conditioning]]:
        """The region's texts for the rows as UNet batches (`row_groups`), on the UNet's device and dtype;
        kept while the rows and the texts scheduled for the step stay the same."""
        rows = row_conditioning(plan.texts, roles)
        key = (roles.images, roles.is_cond, tuple(map(id, rows)), hidden.device, hidden.dtype)
        cached = self._region_rows.get(id(plan.texts))
        if cached is None or cached[0] != key:
            groups = [
                (index, Conditioning(context.context.to(hidden.device, hidden.dtype), context.pooled))
                for index, context in row_groups(rows, roles)
            ]
            cached = self._region_rows[id(plan.texts)] = (key, groups)
        return cached[1]

    def _region_passes(
        self, regions: list[tuple[Region, JobConditioning]], height: int, width: int, device: torch.device
    ) -> list[RegionPass]:
        if not regions:
            return []
        key = (height, width, str(device), id(regions))
        if key not in self._passes:
            self._passes = {key: self._build_passes(regions, height, width, device)}  # one set at a time
        return self._passes[key]

    def _build_passes(
        self, regions: list[tuple[Region, JobConditioning]], height: int, width: int, device: torch.device
    ) -> list[RegionPass]:
        passes = []
        for region, texts in regions:
            span = region.span(width, height)
            if span is None:
                continue
            box = Box(*span)
            feather = (
                send(feather_mask(box.width, box.height, region.feather), device)
                if region.foreground
                else None
            )
            passes.append(RegionPass(region, box, texts, self._tile_weight(box, device), feather))
        return passes

    def _tile_weight(self, box: Box, device: torch.device) -> Tensor | float:
        if self.settings.method == "MultiDiffusion":
            return 1.0
        return send(gaussian_weights(box.width, box.height), device)

    def _weight(
        self, boxes: list[Box], passes: list[RegionPass], height: int, width: int, device: torch.device
    ) -> Tensor:
        """How much of each latent pixel the tiles and background regions drew (cached per size)."""
        key = (height, width, str(device), len(passes))
        if key not in self._weights:
            weight = torch.zeros((height, width), device=device)
            for box in boxes:
                weight[box.window()] += self._tile_weight(box, device)
            for plan in passes:
                if plan.feather is None:
                    weight[plan.box.window()] += plan.weight
            self._weights[key] = weight
        return self._weights[key]


def _rows_of(kwargs: dict, index: list[int], rows: int) -> dict:
    """The UNet arguments for the rows `index` of a forward of `rows` rows (all of them: as they are)."""
    call = {k: v for k, v in kwargs.items() if k != "encoder_hidden_states"}
    if len(index) == rows:
        return call
    return {k: _select(v, index, rows) for k, v in call.items()}


def _select(value: Any, index: list[int], rows: int) -> Any:
    if isinstance(value, Tensor) and value.ndim > 0 and value.shape[0] == rows:
        return value[index]
    if isinstance(value, (list, tuple)):
        return type(value)(_select(v, index, rows) for v in value)
    if isinstance(value, dict):
        return {k: _select(v, index, rows) for k, v in value.items()}
    return value


@dataclass
class _Layer:
    """The foreground regions of one forward: their predictions, feather masks and how many overlap."""

    total: Tensor
    mask: Tensor
    count: Tensor

    @classmethod
    def empty(cls, sample: Tensor) -> _Layer:
        height, width = sample.shape[-2:]
        plane = torch.zeros((height, width), device=sample.device)
        return cls(torch.zeros_like(sample, dtype=torch.float32), plane, plane.clone())

    def add(self, box: Box, out: Tensor, feather: Tensor) -> None:
        self.total[(..., *box.window())] += out
        self.mask[box.window()] += feather
        self.count[box.window()] += 1

    def over(self, below: Tensor) -> Tensor:
        """Overlapping foregrounds averaged, then laid over `below` through their mean feather mask."""
        count = self.count.clamp_min(1)
        front, mask = self.total / count, self.mask / count
        return torch.where(self.count > 0, below * (1 - mask) + front * mask, below)


@dataclass
class _Output:
    sample: Tensor

    def __getitem__(self, index: int) -> Tensor:
        return (self.sample,)[index]


@dataclass
class NoiseInversion:
    """Noise inversion for a Tiled Diffusion img2img job (`engine.noise_inversion`): its settings, the
    picture's detail map for renoising (None: no renoise), and the cache it shares with other jobs under
    `key` (what besides the picture and the batch's prompts decides the result: model, networks)."""

    settings: InversionSettings
    detail: np.ndarray | None = None
    cache: InversionCache = field(default_factory=InversionCache)
    key: tuple = ()


class TiledDiffusion(Extension):
    """Tiles every UNet call of the scope, draws the regions and inverts the img2img noise (see the module
    docstring, `engine.tiled_regions` and `engine.noise_inversion`)."""

    def __init__(
        self,
        settings: TileSettings,
        regions: Sequence[Region] = (),
        draw_background: bool = True,
        inversion: NoiseInversion | None = None,
    ) -> None:
        super().__init__()
        self.settings, self.regions, self.draw_background = settings, list(regions), draw_background
        self.inversion = inversion
        self._texts: list[JobConditioning] = []
        self._job: tuple[tuple[str, ...], JobConditioning] | None = None
        self._forward: TiledForward | None = None
        self._model: SDModel | None = None

    def encode_prompts(
        self, prompts: Sequence[str], negative_prompts: Sequence[str], encode: PromptEncoder
    ) -> None:
        if self.inversion is not None:
            self._job = (tuple(prompts), encode(prompts, negative_prompts))
        self._texts = [
            encode(with_addition(prompts, r.prompt), with_addition(negative_prompts, r.negative_prompt))
            for r in self.regions
        ]
        if self._forward is not None:
            self._forward.regions = list(zip(self.regions, self._texts, strict=True))

    def starting_noise(self, start: StartingNoise) -> None:
        if self.regions:
            start.noise = region_noise(start.noise, self.regions)
        if self.inversion is not None and start.init is not None:
            start.noise = self._inverted_noise(self.inversion, start, start.init)

    def _inverted_noise(self, inversion: NoiseInversion, start: StartingNoise, init: Tensor) -> Tensor:
        model, job = self._model, self._job
        assert model is not None and job is not None, "noise inversion runs inside the patch scope"
        if int(model.unet.config["in_channels"]) != init.shape[1]:
            raise InvalidRequestError(
                "Noise inversion needs a model whose UNet takes the latents alone (not an inpainting or "
                "instruct-pix2pix model)"
            )
        sigmas = ModelSigmas.from_config(model.scheduler_config)
        s = inversion.settings
        key = (inversion.key, job[0], s.steps, s.retouch)
        inverted = inversion.cache.get(key, init)
        if inverted is None:
            prediction = str(model.scheduler_config.get("prediction_type", "epsilon"))
            forward = self._cond_forward(model, job[1], start, s.steps)
            inverted = invert(
                forward, init, sigmas, s.steps, s.retouch, prediction,
                progress=start.progress, should_stop=start.should_stop,
            )  # fmt: skip
            if inverted is None:  # interrupted or skipped: the loop stops before its first step
                return start.noise
            inversion.cache.put(key, init, inverted)
        renoise = None
        if inversion.detail is not None and s.renoise_strength > 0:
            renoise = renoise_weights(inversion.detail, s.renoise_strength, *init.shape[-2:])
        return starting_noise(inverted, init, sigmas.sigma_max, start.noise, renoise)

    def _cond_forward(
        self, model: SDModel, texts: JobConditioning, start: StartingNoise, steps: int
    ) -> CondForward:
        """The (tiled) UNet on the batch's cond rows alone, as the inversion calls it, with the batch's
        UNET_FORWARD hooks (ControlNet residuals) as the sampler's calls have them."""
        unet = model.unet
        dtype = compute_dtype(unet)
        images = len(texts.conds)

        def forward(x: Tensor, t: Tensor, step: int) -> Tensor:
            context = stack_rows([pick(c.parts[0][1], step).cond for c in texts.conds])
            rows = torch.arange(images, device=x.device)
            batch = UNetBatch(
                x.to(dtype), t.reshape(()), context, start.time_ids, rows,
                torch.ones(images, dtype=torch.bool, device=x.device), step, steps, {},
                (tuple(range(images)), (True,) * images),
            )  # fmt: skip
            if start.unet_hooks is not None:
                start.unet_hooks(batch)
            else:
                self._note_rows(batch)
            added = (
                None
                if batch.context.pooled is None
                else {"text_embeds": batch.context.pooled.to(dtype), "time_ids": start.time_ids}
            )
            return ldm_blocks.forward_of(unet)(
                batch.x,
                batch.timestep,
                encoder_hidden_states=batch.context.context.to(x.device, dtype),
                added_cond_kwargs=added,
                return_dict=False,
                **batch.unet_kwargs,
            )[0]

        return forward

    @hook(HookPoint.UNET_FORWARD, order=1000)
    def _note_rows(self, batch: UNetBatch) -> None:
        if self._forward is not None and self.regions:
            images, is_cond = batch.row_roles()  # host tuples from the denoiser: no wait for the GPU
            self._forward.rows = RowRoles(images, is_cond, batch.step)

    @contextmanager
    def patch(self, scope: PatchScope) -> Iterator[None]:
        self._model = scope.model
        unet = scope.model.unet
        own = vars(unet).get("forward")  # an instance-level forward (an offload hook's) is kept and restored
        self._forward = TiledForward(
            unet.forward,
            self.settings,
            (),
            self.draw_background,  # regions come with their texts
        )
        setattr(unet, "forward", self._forward)  # noqa: B010
        try:
            yield
        finally:
            self._forward = self._model = None
            if own is not None:
                setattr(unet, "forward", own)  # noqa: B010
            else:
                delattr(unet, "forward")
