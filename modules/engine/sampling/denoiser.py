"""One denoiser call per sampling step: the UNet on cond and uncond in one batch, then CFG.

Hooks see and may change every call (A1111's `on_cfg_denoiser` / `on_cfg_denoised`, ControlNet
residuals, per-step prompt schedules). The batch order [uncond, cond] matches diffusers' pipelines,
so the same inputs give the same floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel


@dataclass
class DenoiserCall:
    """What one step sends through the UNet; hooks may replace any field before the forward."""

    x: torch.Tensor  # scaled model input for the images [B, C, h, w]
    timestep: torch.Tensor
    step: int
    total_steps: int
    context: torch.Tensor  # [B, T, D] per image
    uncond_context: torch.Tensor | None  # None when CFG is off (scale <= 1)
    cfg_scale: float
    added_cond: dict[str, torch.Tensor] | None = None
    uncond_added_cond: dict[str, torch.Tensor] | None = None
    unet_kwargs: dict = field(default_factory=dict)


BeforeHook = Callable[[DenoiserCall], None]
AfterHook = Callable[[DenoiserCall, torch.Tensor], torch.Tensor | None]


@dataclass
class Guidance:
    """Per-job conditioning: text contexts (equal length), SDXL extras and the CFG scale."""

    context: torch.Tensor
    uncond_context: torch.Tensor
    cfg_scale: float
    added_cond: dict[str, torch.Tensor] | None = None
    uncond_added_cond: dict[str, torch.Tensor] | None = None


class CFGDenoiser:
    """Callable (x_in, t, step) -> guided noise prediction, for one job."""

    def __init__(self, unet: UNet2DConditionModel, guidance: Guidance, total_steps: int):
        self.unet = unet
        self.guidance = guidance
        self.total_steps = total_steps
        self.before: list[BeforeHook] = []
        self.after: list[AfterHook] = []

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, step: int) -> torch.Tensor:
        g = self.guidance
        call = DenoiserCall(
            x=x,
            timestep=timestep,
            step=step,
            total_steps=self.total_steps,
            context=g.context,
            uncond_context=g.uncond_context if g.cfg_scale > 1 else None,
            cfg_scale=g.cfg_scale,
            added_cond=g.added_cond,
            uncond_added_cond=g.uncond_added_cond,
        )
        for hook in self.before:
            hook(call)
        out = self._guided(call)
        for hook in self.after:
            replaced = hook(call, out)
            out = out if replaced is None else replaced
        return out

    def _guided(self, call: DenoiserCall) -> torch.Tensor:
        if call.uncond_context is None:
            return self._unet(call.x, call.timestep, call.context, call.added_cond, call.unet_kwargs)
        x = torch.cat([call.x, call.x])
        context = torch.cat([call.uncond_context, call.context])
        added = _cat_added(call.uncond_added_cond, call.added_cond)
        uncond, cond = self._unet(x, call.timestep, context, added, call.unet_kwargs).chunk(2)
        return uncond + call.cfg_scale * (cond - uncond)

    def _unet(self, x, timestep, context, added_cond, kwargs) -> torch.Tensor:
        return self.unet(
            x,
            timestep,
            encoder_hidden_states=context,
            added_cond_kwargs=added_cond,
            return_dict=False,
            **kwargs,
        )[0]


def _cat_added(uncond: dict | None, cond: dict | None) -> dict | None:
    if cond is None:
        return None
    return {key: torch.cat([uncond[key], cond[key]]) for key in cond}
