"""One denoiser call per model evaluation: the UNet on cond and uncond rows, then (composable) CFG.

At model call `step` every image uses the schedule entries its prompt editing selects, for each of its
AND parts. Guidance is A1111's: `uncond + sum_i w_i * cfg * (cond_i - uncond)`; with a single part of
weight 1 that is diffusers' CFG, computed in the same order ([uncond, cond] in one batch), so the same
inputs give the same floats. When cond and uncond differ in token length they run as two batches
(A1111's default) or, with opt `pad_cond_uncond`, are padded with empty-prompt chunks into one.

Hooks see and may change every call (A1111's `on_cfg_denoiser` / `on_cfg_denoised`, ControlNet
residuals, recording which conditioning was used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from diffusers import UNet2DConditionModel

from modules.engine.text.encoder import Conditioning, pad_to_same_length
from modules.engine.text.schedule import JobConditioning, pick, stack_rows


@dataclass
class DenoiserCall:
    """What one model evaluation sends through the UNet; hooks may replace fields before the forward."""

    x: torch.Tensor  # scaled model input for the images [B, C, h, w]
    timestep: torch.Tensor
    step: int  # model call index, from 0
    total_steps: int
    cfg_scale: float
    conds: list[list[tuple[float, Conditioning]]]  # per image: AND parts (weight, row) at this step
    unconds: list[Conditioning]  # per image
    time_ids: torch.Tensor | None = None  # SDXL size conditioning per image [B, 6]
    empty: Conditioning | None = None  # set: pad cond/uncond of unequal length with empty chunks
    unet_kwargs: dict = field(default_factory=dict)


BeforeHook = Callable[[DenoiserCall], None]
AfterHook = Callable[[DenoiserCall, torch.Tensor], torch.Tensor | None]


@dataclass
class Guidance:
    """Per-job conditioning: schedules per image, the CFG scale and SDXL's size conditioning."""

    conditioning: JobConditioning
    cfg_scale: float
    time_ids: torch.Tensor | None = None


class CFGDenoiser:
    """Callable (x_in, t, step) -> guided noise prediction, for one job."""

    def __init__(self, unet: UNet2DConditionModel, guidance: Guidance, total_steps: int):
        self.unet = unet
        self.guidance = guidance
        self.total_steps = total_steps
        self.before: list[BeforeHook] = []
        self.after: list[AfterHook] = []

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, step: int) -> torch.Tensor:
        call = self.make_call(x, timestep, step)
        for hook in self.before:
            hook(call)
        out = guided(self.unet, call)
        for hook in self.after:
            replaced = hook(call, out)
            out = out if replaced is None else replaced
        return out

    def make_call(self, x: torch.Tensor, timestep: torch.Tensor, step: int) -> DenoiserCall:
        jc = self.guidance.conditioning
        conds = [[(weight, pick(schedule, step).cond) for weight, schedule in c.parts] for c in jc.conds]
        unconds = [pick(schedule, step).cond for schedule in jc.unconds]
        return DenoiserCall(
            x,
            timestep,
            step,
            self.total_steps,
            self.guidance.cfg_scale,
            conds,
            unconds,
            self.guidance.time_ids,
        )


def guided(unet: UNet2DConditionModel, call: DenoiserCall) -> torch.Tensor:
    counts = [len(parts) for parts in call.conds]
    owners = torch.repeat_interleave(
        torch.arange(len(counts), device=call.x.device), torch.tensor(counts, device=call.x.device)
    )
    cond = stack_rows([row for parts in call.conds for _, row in parts])
    x_cond = call.x[owners]
    time_cond = None if call.time_ids is None else call.time_ids[owners]
    if _only_cond_needed(call):
        return _unet(unet, x_cond, call.timestep, cond, time_cond, call.unet_kwargs)
    uncond = stack_rows(call.unconds)
    if call.empty is not None and cond.context.shape[1] != uncond.context.shape[1]:
        cond, uncond = pad_to_same_length(cond, uncond, call.empty)
    uncond_out, cond_out = _forward_both(unet, call, x_cond, cond, time_cond, uncond)
    weights = torch.tensor(
        [w * call.cfg_scale for parts in call.conds for w, _ in parts], device=call.x.device
    )
    diffs = (cond_out - uncond_out[owners]) * weights.view(-1, 1, 1, 1).to(cond_out.dtype)
    return uncond_out.index_add(0, owners, diffs)


def _only_cond_needed(call: DenoiserCall) -> bool:
    """CFG scale 1 with one plain part per image is exactly the cond prediction: skip uncond."""
    return call.cfg_scale == 1 and all(len(p) == 1 and p[0][0] == 1 for p in call.conds)


def _forward_both(unet, call: DenoiserCall, x_cond, cond: Conditioning, time_cond, uncond: Conditioning):
    n_uncond = call.x.shape[0]
    if cond.context.shape[1] == uncond.context.shape[1]:
        x = torch.cat([call.x, x_cond])
        context = Conditioning(
            torch.cat([uncond.context, cond.context]),
            None if cond.pooled is None else torch.cat([uncond.pooled, cond.pooled]),
        )
        time_ids = None if call.time_ids is None else torch.cat([call.time_ids, time_cond])
        out = _unet(unet, x, call.timestep, context, time_ids, call.unet_kwargs)
        return out[:n_uncond], out[n_uncond:]
    uncond_out = _unet(unet, call.x, call.timestep, uncond, call.time_ids, call.unet_kwargs)
    return uncond_out, _unet(unet, x_cond, call.timestep, cond, time_cond, call.unet_kwargs)


def _unet(unet, x, timestep, cond: Conditioning, time_ids, kwargs) -> torch.Tensor:
    added = None if cond.pooled is None else {"text_embeds": cond.pooled, "time_ids": time_ids}
    return unet(
        x, timestep, encoder_hidden_states=cond.context, added_cond_kwargs=added, return_dict=False, **kwargs
    )[0]
