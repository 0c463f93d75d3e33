"""One denoiser call per model evaluation: the UNet on cond and uncond rows, then (composable) CFG.

At model call `step` every image uses the schedule entries its prompt editing selects, for each of its
AND parts. Guidance is A1111's: `uncond + sum_i w_i * cfg * (cond_i - uncond)`; with a single part of
weight 1 that is diffusers' CFG, computed in the same order ([uncond, cond] in one batch), so the same
inputs give the same floats. When cond and uncond differ in token length they run as two batches
(A1111's default) or, with opt `pad_cond_uncond`, are padded with empty-prompt chunks into one.

Engine extensions (`engine.extensions`) see and may change every call: PRE_MODEL_CALL before the rows are
built (A1111's `on_cfg_denoiser`), UNET_FORWARD for every UNet forward with, per row, the image it belongs
to and whether it is a cond or an uncond row (ControlNet residuals), PRE_CFG on the rows' predictions
before they are combined (A1111's `on_cfg_denoised` and `combine_denoised`), POST_CFG on the guided
prediction (A1111's `on_cfg_after_cfg`).

Image conditioning (`DenoiserCall.image_conditioning`, A1111's `image_cond`): 9-channel inpainting and
instruct-pix2pix UNets get it concatenated to the latent input of every row, cond and uncond alike. With
an instruct-pix2pix `image_cfg_scale` other than 1 the guidance has three terms (A1111's edit model and
diffusers' pix2pix pipeline): `uncond + cfg * (cond - img) + image_cfg * (img - uncond)`, where `img` is the
uncond text with the image and `uncond` the uncond text with a zero image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from diffusers import UNet2DConditionModel

from modules.sumi.engine.extensions import (
    DenoiserCall,
    DenoiserOutput,
    ExtensionManager,
    HookPoint,
    RowOutputs,
    RowsOnHost,
    UNetBatch,
    ldm_blocks,
)
from modules.sumi.engine.host_values import scalar_on, send
from modules.sumi.engine.model import compute_dtype
from modules.sumi.engine.sampling.tuning import UncondSkipping
from modules.sumi.engine.text.encoder import Conditioning, pad_to_same_length
from modules.sumi.engine.text.schedule import JobConditioning, pick, stack_rows


@dataclass
class Guidance:
    """Per-job conditioning: schedules per image, the CFG scale and SDXL's size conditioning."""

    conditioning: JobConditioning
    cfg_scale: float
    time_ids: torch.Tensor | None = None
    uncond_time_ids: torch.Tensor | None = None  # None: `time_ids` (only the SDXL refiner differs)


class CFGDenoiser:
    """Callable (x_in, t, step) -> guided noise prediction, for one job."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        guidance: Guidance,
        total_steps: int,
        extensions: ExtensionManager | None = None,
        *,
        sigma_of: Callable[[torch.Tensor], float] | None = None,
        image_conditioning: torch.Tensor | None = None,
        image_cfg_scale: float | None = None,
        skipping: UncondSkipping | None = None,
    ) -> None:
        self.unet = unet
        self.skipping = skipping or UncondSkipping()
        self.skipped: set[str] = set()  # why calls ran without the negative prompt ("early", "ngms")
        self.guidance = guidance
        self.total_steps = total_steps
        self.extensions = extensions if extensions is not None else ExtensionManager()
        self.sigma_of = sigma_of  # the noise level of the current call from its timestep (the scheduler's)
        self.image_conditioning = image_conditioning
        self.image_cfg_scale = image_cfg_scale
        self.cfg_multiplier = 1.0  # DDIM CFG++ guides with cfg_scale / 12.5
        self.keep_uncond = False  # DDIM CFG++ reads `last_uncond`, the last call's uncond prediction
        self.last_uncond: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, timestep: torch.Tensor, step: int) -> torch.Tensor:
        call = self.make_call(x, timestep, step)
        self.extensions.run(HookPoint.PRE_MODEL_CALL, call)
        out = guided(self.unet, call, self.extensions)
        self.last_uncond = call.uncond_output
        if self.extensions.has(HookPoint.POST_CFG):
            result = DenoiserOutput(call, out)
            self.extensions.run(HookPoint.POST_CFG, result)
            out = result.output
        return out

    def make_call(self, x: torch.Tensor, timestep: torch.Tensor, step: int) -> DenoiserCall:
        jc = self.guidance.conditioning
        conds = [[(weight, pick(schedule, step).cond) for weight, schedule in c.parts] for c in jc.conds]
        unconds = [pick(schedule, step).cond for schedule in jc.unconds]
        sigma = None if self.sigma_of is None else self.sigma_of(timestep)  # the loops give a host timestep
        timestep = scalar_on(timestep, x.device)
        edit = self.image_conditioning is not None and self.image_cfg_scale not in (None, 1.0)
        skip = None if edit else self.skipping.reason(step, self.total_steps, sigma)
        if skip is not None:
            self.skipped.add(skip)
        return DenoiserCall(
            x,
            timestep,
            step,
            self.total_steps,
            self.guidance.cfg_scale * self.cfg_multiplier,
            conds,
            unconds,
            self.guidance.time_ids,
            conditioning=jc,
            denoiser=self,
            sigma=sigma,
            image_conditioning=self.image_conditioning,
            image_cfg_scale=self.image_cfg_scale,
            keep_uncond=self.keep_uncond,
            uncond_time_ids=self.guidance.uncond_time_ids,
            skip_uncond=skip is not None,
        )


def guided(
    unet: UNet2DConditionModel, call: DenoiserCall, extensions: ExtensionManager | None = None
) -> torch.Tensor:
    """The guided prediction for one call: the UNet on its cond and uncond rows, then CFG."""
    counts = [len(parts) for parts in call.conds]
    device = call.x.device
    # Small host lists reach the device through pinned memory without blocking (`send`):
    # `torch.tensor(..., device=cuda)` would wait for the GPU to drain its queue at every model call.
    owners = send(torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)), device)
    cond = stack_rows([row for parts in call.conds for _, row in parts])
    image = call.image_conditioning
    n_cond = sum(counts)
    cond_rows = _Rows(
        call.x[owners] if call.rows_x is None else call.rows_x[:n_cond],
        cond,
        None if call.time_ids is None else call.time_ids[owners],
        owners,
        True,
        None if image is None else image[owners],
        (tuple(i for i, count in enumerate(counts) for _ in range(count)), (True,) * n_cond),
    )
    if _is_edit(call):
        return _edit_guided(unet, call, cond_rows, extensions)
    rows_hook = extensions is not None and extensions.has(HookPoint.PRE_CFG)
    if _only_cond_needed(call) and not call.keep_uncond and not rows_hook:
        return _unet(unet, call, cond_rows, extensions)
    cfg_scale = call.cfg_scale
    if call.skip_uncond:
        # A1111: the prompt's prediction stands in for the negative prompt's (each image's first AND
        # part), and the parts are combined with scale 1: one plain part gives the prompt's prediction
        cond_out = _unet(unet, call, cond_rows, extensions)
        firsts = send(torch.tensor([sum(counts[:i]) for i in range(len(counts))]), device)
        uncond_out, cfg_scale = cond_out[firsts], 1.0
    else:
        uncond_out, cond_out = _uncond_and_cond(unet, call, cond_rows, extensions)
    if rows_hook:
        assert extensions is not None
        rows = RowOutputs(call, cond_out, uncond_out, owners)
        extensions.run(HookPoint.PRE_CFG, rows)
        cond_out, uncond_out = rows.cond, rows.uncond
        if rows.output is not None:
            if call.keep_uncond:
                call.uncond_output = uncond_out
            return rows.output
    if call.keep_uncond:
        call.uncond_output = uncond_out
    weights = send(torch.tensor([w * cfg_scale for parts in call.conds for w, _ in parts]), device)
    diffs = (cond_out - uncond_out[owners]) * weights.view(-1, 1, 1, 1).to(cond_out.dtype)
    return uncond_out.index_add(0, owners, diffs)


def _uncond_and_cond(
    unet: UNet2DConditionModel, call: DenoiserCall, cond_rows: _Rows, extensions: ExtensionManager | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The UNet's predictions for the negative prompts (one row per image) and the prompts' rows."""
    images = len(call.conds)
    uncond = stack_rows(call.unconds)
    if call.empty is not None and cond_rows.context.context.shape[1] != uncond.context.shape[1]:
        cond_rows.context, uncond = pad_to_same_length(cond_rows.context, uncond, call.empty)
    n_cond = cond_rows.x.shape[0]
    image_ids = torch.arange(call.x.shape[0], device=call.x.device)
    uncond_ids = call.time_ids if call.uncond_time_ids is None else call.uncond_time_ids
    uncond_x = call.x if call.rows_x is None else call.rows_x[n_cond : n_cond + images]
    uncond_rows = _Rows(
        uncond_x, uncond, uncond_ids, image_ids, False, call.image_conditioning, _uncond_roles(images)
    )
    return _forward_both(unet, call, uncond_rows, cond_rows, extensions)


@dataclass
class _Rows:
    """Rows of one kind (cond or uncond) ready for the UNet."""

    x: torch.Tensor
    context: Conditioning
    time_ids: torch.Tensor | None
    images: torch.Tensor
    is_cond: bool
    image_conditioning: torch.Tensor | None = None  # per row, concatenated to x for the UNet
    roles: RowsOnHost = ((), ())  # `images` and each row's cond flag as host tuples (no device read)

    def flags(self) -> torch.Tensor:
        return torch.full((self.x.shape[0],), self.is_cond, dtype=torch.bool, device=self.x.device)


def _is_edit(call: DenoiserCall) -> bool:
    """instruct-pix2pix with image guidance: A1111 uses the three-way guidance only when the image CFG
    scale is set and not 1 (at 1 it equals plain CFG with the image on both halves)."""
    return (
        call.image_conditioning is not None
        and call.image_cfg_scale is not None
        and call.image_cfg_scale != 1.0
    )


def _edit_guided(
    unet: UNet2DConditionModel, call: DenoiserCall, cond: _Rows, extensions: ExtensionManager | None
) -> torch.Tensor:
    """`uncond + cfg * (cond - img) + image_cfg * (img - uncond)` (one prompt part per image, as A1111
    requires for edit models); the three row groups in one UNet batch, in diffusers' order."""
    if any(len(parts) != 1 for parts in call.conds):
        raise ValueError("AND is not supported for instruct-pix2pix models unless Image CFG scale is 1")
    image = call.image_conditioning
    assert image is not None and call.image_cfg_scale is not None
    uncond = stack_rows(call.unconds)
    if call.empty is not None and cond.context.context.shape[1] != uncond.context.shape[1]:
        cond.context, uncond = pad_to_same_length(cond.context, uncond, call.empty)
    images = torch.arange(call.x.shape[0], device=call.x.device)
    n, n_cond = call.x.shape[0], cond.x.shape[0]
    img_x = call.x if call.rows_x is None else call.rows_x[n_cond : n_cond + n]
    img_rows = _Rows(img_x, uncond, call.time_ids, images, False, image, _uncond_roles(n))
    plain_x = call.x if call.rows_x is None else call.rows_x[n_cond + n : n_cond + 2 * n]
    plain_rows = replace(img_rows, x=plain_x, image_conditioning=torch.zeros_like(image))
    groups = (cond, img_rows, plain_rows)
    if cond.context.context.shape[1] == uncond.context.shape[1]:
        out_cond, out_img, out_uncond = _unet(
            unet, call, _cat_rows(groups), extensions, torch.cat([g.flags() for g in groups])
        ).split(n)
    else:
        out_cond, out_img, out_uncond = (_unet(unet, call, rows, extensions) for rows in groups)
    if extensions is not None and extensions.has(HookPoint.PRE_CFG):
        rows = RowOutputs(call, out_cond, out_uncond, cond.images, out_img)
        extensions.run(HookPoint.PRE_CFG, rows)
        out_cond, out_uncond, out_img = rows.cond, rows.uncond, rows.image
        assert out_img is not None, "a PRE_CFG hook took the image rows of an instruct-pix2pix call"
        if rows.output is not None:
            if call.keep_uncond:
                call.uncond_output = out_uncond
            return rows.output
    if call.keep_uncond:
        call.uncond_output = out_uncond
    return out_uncond + call.cfg_scale * (out_cond - out_img) + call.image_cfg_scale * (out_img - out_uncond)


def _cat_rows(groups: tuple[_Rows, ...]) -> _Rows:
    """Row groups with contexts of one length as one UNet batch (pass their flags for is_cond)."""
    return _Rows(
        torch.cat([g.x for g in groups]),
        Conditioning(
            torch.cat([g.context.context for g in groups]),
            None
            if any(g.context.pooled is None for g in groups)
            else torch.cat([g.context.pooled for g in groups]),  # pyright: ignore[reportArgumentType]
        ),
        None if any(g.time_ids is None for g in groups) else torch.cat([g.time_ids for g in groups]),  # pyright: ignore[reportArgumentType]
        torch.cat([g.images for g in groups]),
        False,
        None
        if any(g.image_conditioning is None for g in groups)
        else torch.cat([g.image_conditioning for g in groups]),  # pyright: ignore[reportArgumentType]
        _joined_roles(groups),
    )


def _uncond_roles(images: int) -> RowsOnHost:
    return tuple(range(images)), (False,) * images


def _joined_roles(groups: tuple[_Rows, ...]) -> RowsOnHost:
    return sum((g.roles[0] for g in groups), ()), sum((g.roles[1] for g in groups), ())


def _only_cond_needed(call: DenoiserCall) -> bool:
    """CFG scale 1 with one plain part per image is exactly the cond prediction: skip uncond."""
    return call.cfg_scale == 1 and all(len(p) == 1 and p[0][0] == 1 for p in call.conds)


def _forward_both(
    unet: UNet2DConditionModel,
    call: DenoiserCall,
    uncond: _Rows,
    cond: _Rows,
    extensions: ExtensionManager | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[uncond, cond] in one batch (diffusers' order) when the contexts have the same length, else two."""
    if cond.context.context.shape[1] != uncond.context.context.shape[1]:
        return _unet(unet, call, uncond, extensions), _unet(unet, call, cond, extensions)
    n_uncond = uncond.x.shape[0]
    both = _Rows(
        torch.cat([uncond.x, cond.x]),
        Conditioning(
            torch.cat([uncond.context.context, cond.context.context]),
            _cat_present(uncond.context.pooled, cond.context.pooled),
        ),
        _cat_present(uncond.time_ids, cond.time_ids),
        torch.cat([uncond.images, cond.images]),
        False,
        _cat_present(uncond.image_conditioning, cond.image_conditioning),
        _joined_roles((uncond, cond)),
    )
    flags = torch.cat([uncond.flags(), cond.flags()])
    out = _unet(unet, call, both, extensions, flags)
    return out[:n_uncond], out[n_uncond:]


def _cat_present(first: torch.Tensor | None, second: torch.Tensor | None) -> torch.Tensor | None:
    """Both row groups' optional inputs (SDXL's pooled text, time ids) in one batch; None when absent."""
    if first is None or second is None:
        return None
    return torch.cat([first, second])


def _unet(
    unet: UNet2DConditionModel,
    call: DenoiserCall,
    rows: _Rows,
    extensions: ExtensionManager | None,
    is_cond: torch.Tensor | None = None,
) -> torch.Tensor:
    dtype = unet_dtype(unet, rows.x.dtype)
    x = rows.x.to(dtype)  # latents may be fp32 (CPU bf16 path, --upcast-sampling): cast at the UNet only
    context = rows.context.context.to(dtype)
    added = (
        None
        if rows.context.pooled is None
        else {"text_embeds": rows.context.pooled.to(dtype), "time_ids": rows.time_ids}
    )
    kwargs = dict(call.unet_kwargs)
    if extensions is not None and extensions.has(HookPoint.UNET_FORWARD):
        batch = UNetBatch(
            x,
            call.timestep,
            rows.context,
            rows.time_ids,
            rows.images,
            rows.flags() if is_cond is None else is_cond,
            call.step,
            call.total_steps,
            kwargs,
            rows.roles if len(rows.roles[0]) == rows.x.shape[0] else None,
        )
        extensions.run(HookPoint.UNET_FORWARD, batch)
        kwargs = batch.unet_kwargs
        if batch.context is not rows.context:  # a hook replaced the text (the T2I style adapter's tokens,
            context = batch.context.context.to(dtype)  # Revision's pooled picture embedding)
            if added is not None and batch.context.pooled is not None:
                added = {**added, "text_embeds": batch.context.pooled.to(dtype)}
    if rows.image_conditioning is not None:
        x = torch.cat([x, rows.image_conditioning.to(x.dtype)], dim=1)
    out = ldm_blocks.forward_of(unet)(
        x,
        call.timestep,
        encoder_hidden_states=context,
        added_cond_kwargs=added,
        return_dict=False,
        **kwargs,
    )[0]
    return out.to(rows.x.dtype)


def unet_dtype(unet: object, default: torch.dtype) -> torch.dtype:
    """The dtype the UNet computes in: its `dtype` (diffusers models, and wrappers that forward it),
    else `default`."""
    if isinstance(unet, torch.nn.Module):
        return compute_dtype(unet)  # not diffusers' `dtype`, which is fp8 for fp8-stored weights
    dtype = getattr(unet, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) else default
