"""A1111's denoiser around each model call, on the engine's hook points: `on_cfg_denoiser` with A1111's
batch layout (PRE_MODEL_CALL), `on_cfg_denoised` and the batch's `CFGDenoiser.combine_denoised` on the
UNet's rows (PRE_CFG), `on_cfg_after_cfg` on the guided result (also PRE_CFG, before the engine's own
POST_CFG hooks).

A1111's layout, which Latent Couple and the CFG extensions index into: `x` (and `sigma`, `image_cond`) has
the cond rows first, one per AND part of each image, images in order, then one uncond row per image
(instruct-pix2pix with image guidance: then one more per image, the zero-image uncond). Values are
A1111's k-diffusion ones whatever Sumi's sampler: `x` is the noisy latent `x0 + sigma * noise` (Sumi's
UNet input times sqrt(1 + sigma^2)), and the rows `on_cfg_denoised` sees, `combine_denoised` combines
and `on_cfg_after_cfg` gets are denoised (x0) predictions; the result goes back to the model's own
prediction (eps or v) for Sumi's sampler. Every conversion is affine with the same sigma both ways, so
A1111's own combination gives Sumi's guidance back up to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch

from modules.sumi.engine.extensions import DenoiserCall, Extension, HookPoint, RowOutputs, hook
from modules.sumi.engine.text.encoder import Conditioning
from modules.sumi.engine.text.schedule import stack_rows
from modules.sumi.services.jobs.a1111_sampler import CFGDenoiser
from modules.sumi.services.scripts.callbacks import (
    AfterCFGCallbackParams,
    CallbackRegistry,
    CFGDenoisedParams,
    CFGDenoiserParams,
)

CFG_CALLBACKS = ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg")


class A1111Denoiser(Extension):
    """The batch's A1111 denoiser: its callbacks and its sampler's `model_wrap_cfg` (a `CFGDenoiser`)."""

    def __init__(
        self,
        callbacks: CallbackRegistry | None,
        sampler: Any,
        sigmas: torch.Tensor,
        prediction_type: str,
    ) -> None:
        super().__init__()
        self.callbacks = callbacks
        self.sampler = sampler
        # a sampler object an extension's create_sampler made without A1111's denoiser gets the default
        self._denoiser = getattr(sampler, "model_wrap_cfg", None) or CFGDenoiser(sampler)
        self.sigmas = sigmas  # the model's training sigmas, for a call whose sigma the loop does not know
        self.prediction_type = prediction_type
        self._uncond_text: Any = None  # this call's text_uncond, as on_cfg_denoiser left it

    @property
    def denoiser(self) -> Any:
        return self._denoiser

    def _has(self, name: str) -> bool:
        return self.callbacks is not None and self.callbacks.has(name)

    def _call(self, name: str, params: Any) -> None:
        if self.callbacks is not None:
            self.callbacks.call(name, params)

    @hook(HookPoint.PRE_MODEL_CALL)
    def cfg_denoiser(self, call: DenoiserCall) -> None:
        denoiser = self.denoiser
        denoiser.step = call.step
        denoiser.total_steps = call.total_steps
        denoiser.image_cfg_scale = call.image_cfg_scale
        cond_text = stack_rows([row for parts in call.conds for _, row in parts])
        uncond_text = stack_rows(call.unconds)
        self._uncond_text = _a1111_text(uncond_text)
        if not self._has("cfg_denoiser"):
            return
        sigma = call_sigmas(call, self.sigmas)
        index = row_index(call)
        x_in = call.x * _k_scale(sigma)
        x_in = x_in[index]
        sigma_in = sigma[index]
        image = call.image_conditioning
        if image is None:  # A1111: txt2img with a plain model has a [B, 5, 1, 1] zero image_cond
            image_in = torch.zeros((len(index), 5, 1, 1), dtype=call.x.dtype, device=call.x.device)
        else:
            image_in = torch.cat([image, torch.zeros_like(image)])[_image_index(call, index)]
        params = CFGDenoiserParams(
            x_in,
            image_in,
            sigma_in,
            call.step,
            call.total_steps,
            _a1111_text(cond_text),
            self._uncond_text,
            denoiser,
        )
        snapshots = (x_in.clone(), sigma_in.clone(), image_in.clone())
        self._call("cfg_denoiser", params)
        if _changed(params.x, x_in, snapshots[0]):
            call.rows_x = params.x / _k_scale(sigma_in)
        if _changed(params.sigma, sigma_in, snapshots[1]) or _changed(
            params.image_cond, image_in, snapshots[2]
        ):
            self.warnings.append(
                "on_cfg_denoiser changed params.sigma or params.image_cond: Sumi's sampler keeps its own "
                "noise level and image conditioning (only x, text_cond and text_uncond are read back)"
            )
        call.conds = _rows_back(call.conds, params.text_cond, cond_text)
        if params.text_uncond is not self._uncond_text or _text_changed(params.text_uncond, uncond_text):
            rebuilt = _from_a1111_text(params.text_uncond, uncond_text)
            call.unconds = [_row(rebuilt, i) for i in range(len(call.unconds))]
            self._uncond_text = params.text_uncond

    @hook(HookPoint.PRE_CFG)
    def combine(self, rows: RowOutputs) -> None:
        call = rows.call
        sigma = call_sigmas(call, self.sigmas)
        batch = call.x.shape[0]
        x_rows = call.rows_x if call.rows_x is not None else call.x[row_index(call)]
        groups = [rows.cond, rows.uncond] if rows.image is None else [rows.cond, rows.image, rows.uncond]
        out = torch.cat(groups).float()
        index = row_index(call)
        x_out = self._to_x0(out, x_rows.float(), sigma[index])
        params = CFGDenoisedParams(
            x_out, call.step, call.total_steps, getattr(self.sampler, "model_wrap", None)
        )
        self._call("cfg_denoised", params)
        x_out = params.x
        denoiser = self.denoiser
        if rows.image is not None:
            denoised = denoiser.combine_denoised_for_edit_model(x_out, call.cfg_scale)
        else:
            conds_list = _conds_list(call)
            denoised = denoiser.combine_denoised(x_out, conds_list, self._uncond_text, call.cfg_scale)
        after = AfterCFGCallbackParams(denoised, call.step, call.total_steps)
        self._call("cfg_after_cfg", after)
        denoised = after.x
        assert denoised.shape[0] == batch, (
            f"the combined prediction has {denoised.shape[0]} rows, not {batch}"
        )
        rows.output = self._from_x0(denoised.float(), call.x.float(), sigma).to(rows.uncond.dtype)
        denoiser.step = call.step + 1

    def _to_x0(self, out: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The model's prediction (eps or v) at the UNet input `x` -> the denoised latent."""
        s = sigma.view(-1, 1, 1, 1).float()
        a = 1 / (1 + s * s).sqrt()
        if self.prediction_type == "v_prediction":
            return a * x - a * s * out
        return x / a - s * out

    def _from_x0(self, x0: torch.Tensor, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, 1, 1, 1).float()
        a = 1 / (1 + s * s).sqrt()
        if self.prediction_type == "v_prediction":
            return (a * x - x0) / (a * s)
        return (x / a - x0) / s


def call_sigmas(call: DenoiserCall, training_sigmas: torch.Tensor) -> torch.Tensor:
    """The call's noise level per image [B] (float32, on the latents' device)."""
    images = call.x.shape[0]
    if call.sigma is not None:  # a host number: made on the device by a fill (a copy would wait for it)
        return torch.full((images,), float(call.sigma), dtype=torch.float32, device=call.x.device)
    value = sigma_at(training_sigmas, call.timestep)
    return value.float().reshape(1).to(call.x.device).expand(images)


def sigma_at(sigmas: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
    """The noise level of a (possibly fractional) timestep, interpolated in log sigma like k-diffusion."""
    t = float(torch.as_tensor(timestep).flatten()[0])
    t = min(max(t, 0.0), len(sigmas) - 1.0)
    low = int(t)
    high = min(low + 1, len(sigmas) - 1)
    w = t - low
    log_sigma = (1 - w) * sigmas[low].log() + w * sigmas[high].log()
    return log_sigma.exp().float().reshape(1)


def is_edit_call(call: DenoiserCall) -> bool:
    """instruct-pix2pix with image guidance (the engine's three-row-group guidance)."""
    return call.image_conditioning is not None and call.image_cfg_scale not in (None, 1.0)


def row_index(call: DenoiserCall) -> torch.Tensor:
    """The image of every A1111 row: cond rows per AND part, then the uncond rows (twice for edit)."""
    owners = [i for i, parts in enumerate(call.conds) for _ in parts]
    images = list(range(call.x.shape[0]))
    index = owners + images + (images if is_edit_call(call) else [])
    return torch.tensor(index, device=call.x.device)


def _image_index(call: DenoiserCall, index: torch.Tensor) -> torch.Tensor:
    """Rows of [image_conditioning, zeros]: the edit model's last uncond group gets a zero image."""
    if not is_edit_call(call):
        return index
    batch = call.x.shape[0]
    return torch.cat([index[:-batch], index[-batch:] + batch])


def _conds_list(call: DenoiserCall) -> list[list[tuple[int, float]]]:
    """A1111's `conds_list`: per image, its (cond row, weight) pairs."""
    out, row = [], 0
    for parts in call.conds:
        out.append([(row + j, float(weight)) for j, (weight, _) in enumerate(parts)])
        row += len(parts)
    return out


def _k_scale(sigma: torch.Tensor) -> torch.Tensor:
    return (1 + sigma.float() ** 2).sqrt().view(-1, 1, 1, 1)


def _a1111_text(conditioning: Conditioning) -> Any:
    """A1111's text conditioning: the token vectors, or for SDXL {"crossattn", "vector"} (Sumi's
    "vector" is the pooled text embedding; A1111's also holds the size embeddings)."""
    if conditioning.pooled is None:
        return conditioning.context
    return {"crossattn": conditioning.context, "vector": conditioning.pooled}


def _from_a1111_text(value: Any, like: Conditioning) -> Conditioning:
    if isinstance(value, dict):
        return Conditioning(value["crossattn"], value.get("vector", like.pooled))
    return Conditioning(value, like.pooled)


def _text_changed(value: Any, original: Conditioning) -> bool:
    new = _from_a1111_text(value, original)
    if new.context.shape != original.context.shape or not torch.equal(new.context, original.context):
        return True
    return (
        new.pooled is not None
        and original.pooled is not None
        and not torch.equal(new.pooled, original.pooled)
    )


def _row(conditioning: Conditioning, i: int) -> Conditioning:
    pooled = None if conditioning.pooled is None else conditioning.pooled[i : i + 1]
    return Conditioning(conditioning.context[i : i + 1], pooled)


def _rows_back(
    conds: list[list[tuple[float, Conditioning]]], value: Any, original: Conditioning
) -> list[list[tuple[float, Conditioning]]]:
    """The call's conds with the rows `on_cfg_denoiser` changed in `text_cond` (unchanged: as they were)."""
    if not _text_changed(value, original):
        return conds
    rebuilt = _from_a1111_text(value, original)
    out, row = [], 0
    for parts in conds:
        out.append([(weight, _row(rebuilt, row + j)) for j, (weight, _) in enumerate(parts)])
        row += len(parts)
    return out


def _changed(value: Any, original: torch.Tensor, snapshot: torch.Tensor) -> bool:
    if value is not original:
        return not (
            isinstance(value, torch.Tensor) and value.shape == snapshot.shape and torch.equal(value, snapshot)
        )
    return not torch.equal(original, snapshot)


def needs_a1111_denoiser(callbacks: CallbackRegistry | None, sampler: Any) -> bool:
    """Whether a batch needs the A1111 denoiser: a cfg callback is registered, or something replaced the
    sampler's `combine_denoised` (no cost otherwise)."""
    if callbacks is not None and any(callbacks.has(name) for name in CFG_CALLBACKS):
        return True
    denoiser = getattr(sampler, "model_wrap_cfg", None)
    if denoiser is None:
        return False
    check = getattr(denoiser, "combination_overridden", None)
    return bool(check()) if callable(check) else True  # an extension's own denoiser class
