"""ControlNet as an engine extension: which units act at a step, and how strongly at each level.

`ControlNetExtension(units)` hooks every UNet forward (UNET_FORWARD) and adds the residuals of the units
active at that model call as `down_block_additional_residuals` / `mid_block_additional_residual`.

Semantics follow sd-webui-controlnet:
- a unit acts while `guidance_start <= step / total_steps <= guidance_end` (model calls, from 0);
- "Balanced": every residual x weight;
- "My prompt is more important" (soft injection): residual i of n (the last is the middle block) x
  weight * 0.825 ** (n - 1 - i), so the shallow levels fade out;
- "ControlNet is more important": soft injection, and the control acts on the cond rows only
  (uncond rows get none: "cfg injection"), which makes CFG push toward the control;
- `advanced_weighting` (one multiplier per residual, the middle block last) replaces those multipliers;
- an effective region mask ([1, 1, H, W] in 0..1) multiplies each scaled residual, resized to it
  (bilinear), so the unit acts only there;
- shuffle models average their residuals over space (global average pooling), after the mask.
Residuals of several units add up. A `low_vram` unit stays on the CPU between uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, ControlNetUnionModel

from modules.sumi.engine.controlnet.t2i_adapter import SOFT_SCALES, T2IAdapterNetwork, fitted, level_sizes
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import Extension, HookPoint, UNetBatch, hook
from modules.sumi.engine.host_values import SentOnce

ControlModel = ControlNetModel | ControlNetUnionModel | T2IAdapterNetwork  # what a map-fed unit runs
CONTROL_MODES = ("Balanced", "My prompt is more important", "ControlNet is more important")
SOFT_INJECTION_BASE = 0.825


@dataclass
class ControlUnit:
    """One enabled ControlNet unit, ready to run: its model, its control image and its settings.

    `image` is [N, 3, H, W] in 0..1 at the output size in pixels; N is 1 (shared by every image of the
    batch) or the batch size (one control image per image).
    """

    model: ControlModel
    image: torch.Tensor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "Balanced"
    global_average_pooling: bool = False
    low_vram: bool = False
    down_block_types: tuple[str, ...] = ()  # the UNet's (where a T2I-Adapter's features go); () = SD1/SDXL
    union_type: int | None = None  # a ControlNet Union model's control type (index into its task embedding)
    advanced_weighting: tuple[float, ...] | None = None  # one multiplier per level, shallowest first
    region_mask: torch.Tensor | None = None  # [1, 1, H, W] in 0..1: where the unit acts (None: everywhere)
    # InstantID: the ControlNet reads its IP-Adapter unit's image tokens instead of the text,
    # (tokens [N, T, C] per image, negative tokens [1, T, C] for the uncond rows)
    context_tokens: tuple[torch.Tensor, torch.Tensor] | None = None
    # a T2I-Adapter's features, computed at the first step: ((device, dtype), features)
    adapter_cache: tuple[tuple[torch.device, torch.dtype], list[torch.Tensor]] | None = field(
        default=None, repr=False, compare=False
    )

    # the control image and region mask on the device, sent once per job
    placed: SentOnce = field(default_factory=SentOnce, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.control_mode not in CONTROL_MODES:
            raise InvalidRequestError(
                f"unknown control mode {self.control_mode!r}; use one of: {', '.join(CONTROL_MODES)}"
            )
        check_window(self.guidance_start, self.guidance_end, "ControlNet")
        if self.advanced_weighting is not None:
            check_level_weights(self.advanced_weighting, self.model)

    def active_at(self, step: int, total_steps: int) -> bool:
        if self.advanced_weighting is not None:
            acts = any(w != 0 for w in self.advanced_weighting)
        else:
            acts = self.weight != 0
        return acts and in_window(step, total_steps, self.guidance_start, self.guidance_end)

    def on_device(self, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The unit's `image` or `region_mask` on `device` in `dtype`, sent at its first use only (a
        copy at every model call would wait for the device each time)."""
        return self.placed.get(name, getattr(self, name), device, dtype)

    @property
    def soft_injection(self) -> bool:
        return self.control_mode != "Balanced"

    @property
    def cond_only(self) -> bool:
        return self.control_mode == "ControlNet is more important"


def check_window(start: float, end: float, what: str) -> None:
    """InvalidRequestError when a unit's guidance window starts after it ends."""
    if start > end:
        raise InvalidRequestError(f"{what} guidance start ({start}) is after guidance end ({end})")


def in_window(step: int, total_steps: int, start: float, end: float) -> bool:
    """Whether model call `step` of `total_steps` lies in the guidance window (the extension's rule)."""
    fraction = step / max(total_steps, 1)
    return start <= fraction <= end


def control_levels(model: ControlModel) -> int:
    """How many feature maps the model gives: a ControlNet's residuals (the middle block's included: 13
    for SD1, 10 for SDXL), a T2I-Adapter's levels (4)."""
    if isinstance(model, T2IAdapterNetwork):
        return len(model.shape.channels)
    return len(model.controlnet_down_blocks) + 1


def check_level_weights(weights: Sequence[float], model: ControlModel) -> None:
    """InvalidRequestError unless `weights` has one number per level of the model. A T2I-Adapter also
    takes one more (sd-webui-controlnet documents 5 for SD1's 4 levels; the last is unused there too)."""
    levels = control_levels(model)
    adapter = isinstance(model, T2IAdapterNetwork)
    allowed = (levels, levels + 1) if adapter else (levels,)
    if len(weights) not in allowed:
        kind = "T2I-Adapter" if adapter else "ControlNet"
        raise InvalidRequestError(
            f"advanced_weighting: this {kind} has {levels} levels (shallowest first"
            f"{'' if adapter else ', the middle block last'}); give {levels} weights, got {len(weights)}"
        )


def level_grid(latent: tuple[int, int], tokens: int) -> tuple[int, int]:
    """The (height, width) of the UNet level whose attention sees `tokens` positions: the latent's,
    halved (rounding up, as the UNet's strided convolutions do) until it has that many cells."""
    height, width = latent
    while height * width > tokens and height > 1:
        height, width = (height + 1) // 2, (width + 1) // 2
    if height * width != tokens:
        raise InvalidRequestError(
            f"an attention over {tokens} positions does not match the {latent[0]}x{latent[1]} latent"
        )
    return height, width


def region_masked(tensor: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`tensor` x the effective region mask resized (bilinear) to its height and width."""
    if mask is None:
        return tensor
    resized = F.interpolate(
        mask.to(device=tensor.device, dtype=tensor.dtype), size=tensor.shape[-2:], mode="bilinear"
    )
    return tensor * resized


def level_scales(unit: ControlUnit, count: int) -> list[float]:
    """The multiplier of each residual, shallowest first (the middle block last)."""
    if unit.advanced_weighting is not None:
        return list(unit.advanced_weighting[:count])
    if not unit.soft_injection:
        return [unit.weight] * count
    return [unit.weight * SOFT_INJECTION_BASE ** (count - 1 - i) for i in range(count)]


class ControlNetExtension(Extension):
    """Adds the residuals of every unit active at the current model call to each UNet forward."""

    def __init__(self, units: Sequence[ControlUnit]) -> None:
        super().__init__()
        self.units = list(units)

    @hook(HookPoint.UNET_FORWARD)
    def add_residuals(self, batch: UNetBatch) -> None:
        kwargs = control_kwargs(self.units, batch)
        if kwargs is not None:
            batch.add_unet_kwargs(kwargs)


def control_kwargs(units: Sequence[ControlUnit], batch: UNetBatch) -> dict | None:
    """The UNet keyword arguments of the units active at the batch's step (None: none is active):
    ControlNet residuals, and T2I-Adapter features (`down_intrablock_additional_residuals`)."""
    total: list[torch.Tensor] | None = None
    features: list[torch.Tensor] | None = None
    for unit in units:
        if not unit.active_at(batch.step, batch.total_steps):
            continue
        if isinstance(unit.model, T2IAdapterNetwork):
            found = adapter_features(unit, batch)
            features = found if features is None else [a + b for a, b in zip(features, found, strict=True)]
            continue
        residuals = unit_residuals(unit, batch)
        total = residuals if total is None else [a + b for a, b in zip(total, residuals, strict=True)]
    if total is None and features is None:
        return None
    kwargs = residual_kwargs(total) if total is not None else {}
    if features is not None:
        kwargs["down_intrablock_additional_residuals"] = features  # diffusers pops them: a fresh list
    return kwargs


@torch.no_grad()
def adapter_features(unit: ControlUnit, batch: UNetBatch) -> list[torch.Tensor]:
    """A T2I-Adapter unit's features for the batch's rows, at the UNet's sizes, scaled: weight at every
    level ("Balanced"), or weight x 0.25 / 0.62 / 0.825 / 1 shallowest first (the other two modes, the
    extension's soft injection); "ControlNet is more important" gives the uncond rows none. The adapter
    runs once per unit (its control image is the same at every step)."""
    adapter = unit.model
    assert isinstance(adapter, T2IAdapterNetwork)
    device, dtype = batch.x.device, batch.x.dtype
    key = (device, dtype)
    if unit.adapter_cache is None or unit.adapter_cache[0] != key:
        if unit.low_vram:
            adapter.to(device)
        try:
            hint = unit.image.to(device=device, dtype=next(adapter.parameters()).dtype)
            found = [f.to(dtype) for f in adapter(hint)]
        finally:
            if unit.low_vram:
                adapter.to("cpu")
        unit.adapter_cache = (key, found)
    found = unit.adapter_cache[1]
    sizes = level_sizes(
        batch.x.shape[-2], batch.x.shape[-1], len(found), adapter.shape.sdxl, unit.down_block_types
    )
    rows = [f[batch.images % f.shape[0]] for f in fitted(found, sizes)]
    if unit.advanced_weighting is not None:
        scales = list(unit.advanced_weighting)
    elif unit.soft_injection:
        scales = [unit.weight * s for s in SOFT_SCALES]
    else:
        scales = [unit.weight] * len(rows)
    mask = None if unit.region_mask is None else unit.on_device("region_mask", device, dtype)
    scaled = [region_masked(r * s, mask) for r, s in zip(rows, scales, strict=False)]
    return _cond_rows_only(scaled, unit, batch)


def _cond_rows_only(levels: list[torch.Tensor], unit: ControlUnit, batch: UNetBatch) -> list[torch.Tensor]:
    """ "ControlNet is more important": the uncond rows get none of the unit's control."""
    if not unit.cond_only:
        return levels
    mask = batch.is_cond.to(levels[0].dtype).view(-1, 1, 1, 1)
    return [level * mask for level in levels]


def residual_kwargs(residuals: Sequence[torch.Tensor]) -> dict:
    """Residuals (shallowest first, the middle block last) as the UNet's keyword arguments."""
    return {
        "down_block_additional_residuals": list(residuals[:-1]),
        "mid_block_additional_residual": residuals[-1],
    }


def validate_units(units: Sequence[ControlUnit], width: int, height: int, batch_size: int) -> None:
    """Reject control images of the wrong size or count before sampling starts."""
    for index, unit in enumerate(units):
        count, _, h, w = unit.image.shape
        if (w, h) != (width, height):
            raise InvalidRequestError(
                f"ControlNet unit {index}: control image is {w}x{h}, expected {width}x{height}"
            )
        if count not in (1, batch_size):
            raise InvalidRequestError(
                f"ControlNet unit {index}: {count} control images for a batch of {batch_size}; give 1 or {batch_size}"
            )


@torch.no_grad()
def unit_residuals(unit: ControlUnit, batch: UNetBatch) -> list[torch.Tensor]:
    """Run one unit's ControlNet on the batch's rows; returns its scaled residuals (mid block last)."""
    device, dtype = batch.x.device, batch.x.dtype
    if unit.low_vram:
        unit.model.to(device)  # pyright: ignore[reportArgumentType] (diffusers' ModelMixin.to typing)
    try:
        down, mid = _forward(unit, batch, device, dtype)
    finally:
        if unit.low_vram:
            unit.model.to("cpu")  # pyright: ignore[reportArgumentType]
    residuals = [*down, mid]
    scales = level_scales(unit, len(residuals))
    mask = None if unit.region_mask is None else unit.on_device("region_mask", device, residuals[0].dtype)
    scaled = [region_masked(r * s, mask) for r, s in zip(residuals, scales, strict=True)]
    if unit.global_average_pooling:
        scaled = [r.mean(dim=(2, 3), keepdim=True) for r in scaled]
    return _cond_rows_only(scaled, unit, batch)


def _forward(
    unit: ControlUnit, batch: UNetBatch, device: torch.device, dtype: torch.dtype
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    image = unit.on_device("image", device, dtype)
    hint = image[batch.images % image.shape[0]]
    added = None
    if batch.context.pooled is not None:
        added = {"text_embeds": batch.context.pooled, "time_ids": batch.time_ids}
    model = unit.model
    assert not isinstance(model, T2IAdapterNetwork)  # adapters go through adapter_features
    context = batch.context.context
    if unit.context_tokens is not None:
        context = tokens_per_row(*unit.context_tokens, batch).to(dtype=dtype)
    *down, mid = controlnet_residuals(model, batch.x, batch.timestep, context, hint, added, unit.union_type)
    return tuple(down), mid


def tokens_per_row(tokens: torch.Tensor, negative: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
    """Per row of the forward: its image's tokens on cond rows, the negative ones on uncond rows."""
    device = batch.x.device
    tokens = tokens.to(device)[batch.images.to(device) % tokens.shape[0]]
    return torch.where(batch.is_cond.to(device).view(-1, 1, 1), tokens, negative.to(device).expand_as(tokens))


def controlnet_residuals(
    model: ControlNetModel | ControlNetUnionModel,
    x: torch.Tensor,
    timestep: torch.Tensor,
    context: torch.Tensor,
    hint: torch.Tensor,
    added: dict | None = None,
    union_type: int | None = None,
) -> list[torch.Tensor]:
    """One ControlNet forward, unscaled: its residuals, shallowest first, the middle block's last.

    `hint` is the control image [B, C, H, W] in 0..1; `added` SDXL's text_embeds / time_ids; `union_type`
    a Union model's control type. Gradients flow when the caller has them on (training), so inference
    wraps this in no_grad itself."""
    if isinstance(model, ControlNetUnionModel):
        if union_type is None or not 0 <= union_type < model.config["num_control_type"]:
            raise InvalidRequestError(
                f"this ControlNet Union model takes control types 0..{model.config['num_control_type'] - 1}; "
                f"got {union_type}"
            )
        kinds = torch.zeros(x.shape[0], model.config["num_control_type"], device=x.device, dtype=x.dtype)
        kinds[:, union_type] = 1
        down, mid = model(
            x,
            timestep,
            encoder_hidden_states=context,
            controlnet_cond=[hint],
            control_type=kinds,
            control_type_idx=[union_type],
            conditioning_scale=1.0,
            added_cond_kwargs=added,
            return_dict=False,
        )
        return [*down, mid]
    down, mid = model(
        x,
        timestep,
        encoder_hidden_states=context,
        controlnet_cond=hint,
        conditioning_scale=1.0,
        added_cond_kwargs=added,
        return_dict=False,
    )
    return [*down, mid]
