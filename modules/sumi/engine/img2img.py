"""img2img and inpainting in latent space: init latents, A1111's strength/steps mapping, latent fills,
the per-step mask blend, image conditioning for 9-channel inpainting and instruct-pix2pix UNets, and
A1111's soft inpainting.

`generate(model, BatchRequest(..., init=InitLatents(...)))` samples from `InitLatents` instead of pure
noise. What happens, as A1111 does it (`sd_samplers_kdiffusion` / `sd_samplers_timesteps`
`sample_img2img`, `processing.StableDiffusionProcessingImg2Img`):

- Steps (`img2img_steps`): with t_enc = int(min(strength, 0.999) * steps), k-diffusion samplers run the
  last t_enc + 1 steps of a `steps`-step schedule; A1111's timestep samplers (DDIM, PLMS, UniPC) the last
  t_enc, with the init noised one step above the first step they run. With `fix_steps`
  (`img2img_fix_steps`) the schedule has int(steps / min(strength, 0.999)) steps and `steps` of them run
  (k-diffusion; steps - 1 for the timestep samplers). Strength 0 runs nothing: the init latents come back
  unchanged (A1111 would still run one step at the lowest noise level).
- Noise: the txt2img noise of the same seeds (variation seeds, resize-seed, CPU/GPU source),
  times `noise_multiplier`; the start is `scheduler.add_noise(init, noise, t_first)`, i.e.
  init + sigma * noise for the k-diffusion schedulers and sqrt(a) * init + sqrt(1 - a) * noise for DDIM.
- Fills (`fill`), only with a mask: "latent noise" replaces the masked latents by the seeds' noise,
  "latent nothing" by zeros, "original" keeps them.
- Mask (1 = regenerate): every model call blends the denoised prediction (x0) with the init latents,
  `init * (1 - mask) + x0 * mask` (for DDIM/PLMS/UniPC A1111 blends the model's input instead); after
  the last step `latents = init * (1 - mask) + latents * mask`, so `BatchResult.latents` keep the init
  latents outside the mask exactly.
- Image conditioning: `encode`, `inpaint_conditioning` (9-channel models), `pix2pix_conditioning`
  (instruct-pix2pix, 8-channel), `needs_image_conditioning(model)`. 9-channel models sampled without an
  init (txt2img) get A1111's txt2img conditioning (grey image, mask of ones).

Soft inpainting (A1111's built-in extension) is `SoftInpainting(...)`, an engine Extension put in the
batch's extensions. In sampling it replaces the mask blend: the x0 blend uses `soft_latent_blend` with
the mask raised to `sigma ** mask_blend_power * mask_blend_scale`, and no final blend is done. After
decoding, the services build the pixel composite (A1111's `apply_adaptive_masks`):

    masks = soft.composite_masks(init.mask, init.latents, result.latents, width, height)
    overlay = soft_overlay(original_image, masks[i])   # RGBA: the original where the latents barely moved
    # then paste `overlay` over the generated image as A1111's apply_overlay does (uncrop for
    # "only masked" first: the masks are width x height, the size of the sampled image)

`composite_masks` returns "L" images, 255 where the generated pixels show and 0 where the original is
kept; `soft_overlay` punches those pixels out of the original (A1111's RGBa paste through the inverted mask).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter, ImageOps

from modules.sumi.engine.accel import tiled_vae
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import (
    DenoiserCall,
    DenoiserOutput,
    Extension,
    HookPoint,
    LoopContext,
    hook,
)
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.noise import image_noise, make_generators
from modules.sumi.engine.sampling.samplers import SamplerSpec

FILLS = ("original", "latent noise", "latent nothing")


@dataclass
class InitLatents:
    """What an img2img batch starts from, in latent space."""

    latents: torch.Tensor  # (B, C, h, w): VAE-encoded init images, scaled like the sampler's latents
    strength: float  # denoising strength in [0, 1]
    mask: torch.Tensor | None = None  # (B or 1, 1, h, w) latent mask, 1 = regenerate, 0 = keep
    fill: str = "original"  # "original", "latent noise", "latent nothing" (A1111 "Masked content")
    noise_multiplier: float = 1.0  # A1111 initial_noise_multiplier
    fix_steps: bool = False  # A1111 img2img_fix_steps: run exactly `steps` steps
    image_conditioning: torch.Tensor | None = None  # extra UNet input channels (inpaint: (B, 5, h, w))
    image_cfg_scale: float | None = None  # instruct-pix2pix only
    # A1111's scripts' `on_mask_blend`: on_blend(current, blended, sigma) -> the blend to use; sigma is
    # None for the final blend after the loop
    on_blend: Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor] | None = None


@dataclass(frozen=True)
class StepPlan:
    """How an img2img batch walks the schedule: its length, how many of its last steps run, and how many
    steps above the first step run the init is noised to."""

    schedule_steps: int
    run_steps: int
    noise_back: int = 0


def img2img_steps(spec: SamplerSpec, steps: int, strength: float, fix_steps: bool = False) -> StepPlan:
    """A1111's `setup_img2img_steps` + `sample_img2img` step counts for `spec` (see the module doc)."""
    if strength <= 0:
        return StepPlan(steps, 0)
    capped = min(strength, 0.999)
    if fix_steps:
        schedule, t_enc = int(steps / capped), steps - 1
    else:
        schedule, t_enc = steps, int(capped * steps)
    if spec.timestep_sampler:
        return StepPlan(schedule, t_enc, 1)
    return StepPlan(schedule, t_enc + 1)


def validate_init(init: InitLatents, batch_size: int, latent_shape: tuple[int, int, int]) -> None:
    """Reject init latents that do not fit the batch, with a message a user understands."""
    if not 0 <= init.strength <= 1:
        raise InvalidRequestError(f"denoising strength must be between 0 and 1, got {init.strength}")
    if init.fill not in FILLS:
        raise InvalidRequestError(f"unknown latent fill {init.fill!r}; choose one of: {', '.join(FILLS)}")
    if tuple(init.latents.shape) != (batch_size, *latent_shape):
        raise InvalidRequestError(
            f"init latents have shape {tuple(init.latents.shape)}, the batch needs {(batch_size, *latent_shape)}"
        )
    if init.mask is not None and (
        init.mask.dim() != 4
        or init.mask.shape[1] != 1
        or init.mask.shape[0] not in (1, batch_size)
        or tuple(init.mask.shape[2:]) != latent_shape[1:]
    ):
        raise InvalidRequestError(
            f"latent mask has shape {tuple(init.mask.shape)}, expected (1 or {batch_size}, 1, "
            f"{latent_shape[1]}, {latent_shape[2]})"
        )


def filled_init(init: InitLatents, seeds: Sequence[int], noise_device: torch.device | str) -> torch.Tensor:
    """The init latents after the masked-content fill (A1111: "latent noise" is the seeds' plain noise,
    without variation seeds; "latent nothing" is zeros)."""
    latents = init.latents
    if init.mask is None or init.fill == "original":
        return latents
    keep = 1 - init.mask.to(latents)
    if init.fill == "latent nothing":
        return latents * keep
    channels, height, width = latents.shape[1:]
    noise = image_noise((channels, height, width), make_generators(seeds, noise_device))
    return latents * keep + noise.to(latents) * init.mask.to(latents)


# -- VAE encoding and image conditioning ---------------------------------------------------------------------


def _posterior_mode(
    model: SDModel,
    pixels: torch.Tensor,
    tiling: tiled_vae.TilingPolicy | None = None,
    tiled: list[tiled_vae.Tiled] | None = None,
) -> torch.Tensor:
    vae = model.vae

    def mode(x: torch.Tensor) -> torch.Tensor:
        return vae.encode(x).latent_dist.mode()  # pyright: ignore[reportAttributeAccessIssue]

    def run(x: torch.Tensor) -> torch.Tensor:
        return tiled_vae.run("encode", mode, x, policy=tiling, vae=vae, scale=model.vae_scale, events=tiled)

    x = pixels.to(device=model.device, dtype=vae.dtype)
    z = run(x)
    if vae.dtype != torch.float32 and not torch.isfinite(z).all():
        torch.nn.Module.to(vae, torch.float32)  # as decoding does: a half VAE that overflows goes fp32
        z = run(pixels.to(device=x.device, dtype=torch.float32))
    return z.to(device=model.device, dtype=model.latent_dtype)


@torch.no_grad()
def encode(
    model: SDModel,
    pixels: torch.Tensor,
    tiling: tiled_vae.TilingPolicy | None = None,
    tiled: list[tiled_vae.Tiled] | None = None,
) -> torch.Tensor:
    """Pixels (B, 3, H, W) in [-1, 1] to latents scaled like the sampler's. The posterior's mean is taken
    (A1111 samples it with the global RNG; its spread is ~1e-3 of the latents), so encoding is deterministic.
    `tiling` and `tiled` as engine.vae.decode's: large images are encoded in tiles."""
    return _posterior_mode(model, pixels, tiling, tiled) * model.vae_scaling_factor


def needs_image_conditioning(model: SDModel) -> str | None:
    """ "inpaint" for 9-channel UNets, "pix2pix" for 8-channel (instruct-pix2pix) ones, else None."""
    channels = int(model.unet.config["in_channels"])
    latent = model.latent_channels
    if channels == 2 * latent + 1:
        return "inpaint"
    if channels == 2 * latent:
        return "pix2pix"
    return None


@torch.no_grad()
def inpaint_conditioning(
    model: SDModel,
    pixels: torch.Tensor,
    mask: torch.Tensor | None = None,
    mask_weight: float = 1.0,
    round_mask: bool = True,
    tiling: tiled_vae.TilingPolicy | None = None,
) -> torch.Tensor:
    """A1111's `inpainting_image_conditioning` for 9-channel models: (B, 5, h, w) = [mask, latents of the
    image masked by `mask * mask_weight`]. `pixels` (B, 3, H, W) in [-1, 1]; `mask` (B or 1, 1, H, W) in
    [0, 1], 1 = regenerate (None: everything), rounded unless `round_mask` is False (soft inpainting)."""
    pixels = pixels.float()
    if mask is None:
        mask = torch.ones((1, 1, *pixels.shape[2:]))
    mask = mask.to(pixels)
    if round_mask:
        mask = torch.round(mask)
    masked = torch.lerp(pixels, pixels * (1.0 - mask), mask_weight)
    latents = encode(model, masked, tiling)
    small = F.interpolate(mask, size=latents.shape[-2:]).expand(latents.shape[0], -1, -1, -1)
    return torch.cat([small.to(latents), latents], dim=1)


@torch.no_grad()
def pix2pix_conditioning(
    model: SDModel, pixels: torch.Tensor, tiling: tiled_vae.TilingPolicy | None = None
) -> torch.Tensor:
    """instruct-pix2pix image conditioning: the VAE posterior's mean of the image, unscaled (A1111's
    `encode_first_stage(...).mode()`, diffusers' pipeline the same)."""
    return _posterior_mode(model, pixels.float(), tiling)


@torch.no_grad()
def txt2img_conditioning(
    model: SDModel, batch_size: int, height: int, width: int, tiling: tiled_vae.TilingPolicy | None = None
) -> torch.Tensor | None:
    """What A1111 feeds image-conditioned models without an init image: for 9-channel models a mask of
    ones and the latents of a grey image; for instruct-pix2pix zeros. None for plain models."""
    kind = needs_image_conditioning(model)
    if kind is None:
        return None
    h, w = height // model.vae_scale, width // model.vae_scale
    if kind == "pix2pix":
        return torch.zeros((batch_size, model.latent_channels, h, w), device=model.device, dtype=model.dtype)
    grey = torch.zeros((1, 3, height, width))  # 0.5 in [0, 1] is 0 in [-1, 1]
    latents = encode(model, grey, tiling)
    ones = torch.ones_like(latents[:, :1])
    return torch.cat([ones, latents], dim=1).expand(batch_size, -1, -1, -1)


# -- the mask blend ------------------------------------------------------------------------------------------


def _alpha(sigma: float) -> tuple[float, float]:
    """(a, b) with the model input x = a * x0 + b * eps at noise level sigma."""
    a = 1.0 / math.sqrt(1.0 + sigma * sigma)
    return a, a * sigma


def soft_latent_blend(init: torch.Tensor, current: torch.Tensor, t: torch.Tensor, detail_preservation: float):
    """A1111 soft inpainting's `latent_blend`: lerp from `init` (t = 0) to `current` (t = 1), then give each
    latent pixel the magnitude interpolated in power `detail_preservation` (bias towards the larger)."""
    wide = torch.float32 if init.device.type == "mps" else torch.float64
    t = t.to(current)
    image = init * (1 - t) + current * t
    current_norm = torch.norm(image, p=2, dim=1, keepdim=True).to(wide) + 0.00001
    t_wide = t.to(wide)
    a_norm = torch.norm(init, p=2, dim=1, keepdim=True).to(wide).pow(detail_preservation) * (1 - t_wide)
    b_norm = torch.norm(current, p=2, dim=1, keepdim=True).to(wide).pow(detail_preservation) * t_wide
    desired = (a_norm + b_norm).pow(1 / detail_preservation)
    return image * (desired / current_norm).to(image.dtype)


class SoftInpainting(Extension):
    """A1111's soft inpainting ("Soft Inpainting" built-in script), its six settings in A1111's order.
    Put it in `generate`'s extensions for a masked img2img batch: the engine's mask blend then uses
    `latent_blend` at every call and skips the final blend. `composite_masks` gives the pixel composite."""

    def __init__(
        self,
        mask_blend_power: float = 1.0,
        mask_blend_scale: float = 0.5,
        inpaint_detail_preservation: float = 4.0,
        composite_mask_influence: float = 0.0,
        composite_difference_threshold: float = 0.5,
        composite_difference_contrast: float = 2.0,
    ) -> None:
        self.mask_blend_power = mask_blend_power
        self.mask_blend_scale = mask_blend_scale
        self.inpaint_detail_preservation = inpaint_detail_preservation
        self.composite_mask_influence = composite_mask_influence
        self.composite_difference_threshold = composite_difference_threshold
        self.composite_difference_contrast = composite_difference_contrast

    def modified_mask(self, mask: torch.Tensor, sigma: float) -> torch.Tensor:
        """A1111's `get_modified_nmask`: the regenerate mask raised to sigma^power * scale."""
        return torch.pow(mask, (sigma**self.mask_blend_power) * self.mask_blend_scale)

    def latent_blend(
        self, init: torch.Tensor, current: torch.Tensor, mask: torch.Tensor, sigma: float
    ) -> torch.Tensor:
        return soft_latent_blend(
            init, current, self.modified_mask(mask, sigma), self.inpaint_detail_preservation
        )

    def composite_masks(
        self,
        mask: torch.Tensor,
        init_latents: torch.Tensor,
        latents: torch.Tensor,
        width: int,
        height: int,
    ) -> list[Image.Image]:
        """A1111's `apply_adaptive_masks` up to the uncrop: per image an "L" mask of width x height, 255
        where the generated pixels show, 0 where the original stays (small latent change, weighted by the
        mask as `composite_mask_influence` says)."""
        latent_mask = mask[:, 0].float().cpu()
        scalar = 1 - torch.clamp(latent_mask, 0, 1) ** (self.mask_blend_scale / 2)
        influence = self.composite_mask_influence
        scalar = 0.5 * (1 - influence) + scalar * influence
        scalar = (scalar / (1.00001 - scalar)).numpy()
        distance = torch.norm(latents.float().cpu() - init_latents.float().cpu(), p=2, dim=1).numpy()
        kernel = gaussian_kernel(1.5, 2)
        masks = []
        for i, dist in enumerate(distance):
            smoothed = weighted_histogram_filter(dist, kernel, 0.9, 1.0)
            smoothed = weighted_histogram_filter(smoothed, kernel, 0.25, 0.75)
            half = self.composite_difference_threshold * scalar[min(i, len(scalar) - 1)]
            with np.errstate(divide="ignore", invalid="ignore"):
                opacity = 1 / (1 + (smoothed / half) ** self.composite_difference_contrast)
            keep = 1 - smootherstep(opacity)
            image = Image.fromarray((255.0 * keep).astype(np.uint8))
            image = image.resize((width, height), resample=Image.Resampling.LANCZOS)
            masks.append(image.filter(ImageFilter.GaussianBlur(radius=4)))
        return masks


def soft_overlay(original: Image.Image, composite_mask: Image.Image) -> Image.Image:
    """The RGBA overlay A1111's soft inpainting pastes over the generated image: the original's pixels,
    transparent (premultiplied, as A1111's RGBa paste) where `composite_mask` lets the generated ones show."""
    punched = Image.new("RGBa", original.size)
    punched.paste(original.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(composite_mask.convert("L")))
    return punched.convert("RGBA")


def smootherstep(x: np.ndarray) -> np.ndarray:
    return x * x * x * (x * (6 * x - 15) + 10)


def gaussian_kernel(stddev_radius: float = 1.0, max_radius: int = 2) -> np.ndarray:
    """A (2r+1)^2 Gaussian kernel, 1 at the centre, tapered to 0 one pixel beyond `max_radius`."""
    zero = math.exp(-((max_radius + 1.0) ** 2) / stddev_radius**2)
    coords = np.arange(-max_radius, max_radius + 1, dtype=np.float64)
    sq = coords[:, None] ** 2 + coords[None, :] ** 2
    return np.maximum(0.0, (np.exp(-sq / stddev_radius**2) - zero) / (1 - zero))


def weighted_histogram_filter(
    img: np.ndarray, kernel: np.ndarray, percentile_min: float, percentile_max: float, min_width: float = 1.0
) -> np.ndarray:
    """A1111 soft inpainting's weighted percentile filter, vectorised: per pixel, the kernel-weighted
    window values stacked by value, averaged over the [min, max] percentile band (at least `min_width`
    weight wide). Pixels beyond the border count with weight 0, as A1111 leaves them out."""
    r = kernel.shape[0] // 2
    h, w = img.shape
    padded = np.pad(img.astype(np.float64), r)
    valid = np.pad(np.ones_like(img, dtype=np.float64), r)
    values, weights = [], []
    for dy in range(kernel.shape[0]):
        for dx in range(kernel.shape[1]):
            values.append(padded[dy : dy + h, dx : dx + w])
            weights.append(valid[dy : dy + h, dx : dx + w] * kernel[dy, dx])
    v, wt = np.stack(values, -1), np.stack(weights, -1)
    order = np.argsort(v, axis=-1, kind="stable")
    v, wt = np.take_along_axis(v, order, -1), np.take_along_axis(wt, order, -1)
    top = np.cumsum(wt, -1)
    bottom = top - wt
    total = top[..., -1:]
    lo, hi = total * percentile_min, total * percentile_max
    narrow = (hi - lo) < min_width
    centre = (lo + hi) / 2
    lo = np.where(narrow, centre - min_width / 2, lo)
    hi = np.where(narrow, centre + min_width / 2, hi)
    over = hi > total
    lo, hi = np.where(over, total - min_width, lo), np.where(over, total, hi)
    under = lo < 0
    lo, hi = np.where(under, 0.0, lo), np.where(under, min_width, hi)
    overlap = np.clip(np.minimum(hi, top) - np.maximum(lo, bottom), 0, None)
    weight = overlap.sum(-1)
    out = np.where(weight > 0, (v * overlap).sum(-1) / np.where(weight > 0, weight, 1), 0.0)
    return out.astype(img.dtype)


class MaskBlend(Extension):
    """The latent mask blend of a masked img2img batch (A1111's CFG denoiser and final blend); `generate`
    adds it. k-diffusion samplers: the x0 of every call is blended with the init latents (the noise
    prediction recomputed from it); `before_model` (DDIM, PLMS, UniPC): the model's input is blended
    instead, as A1111's timestep samplers do. `soft` replaces both blends with soft inpainting's."""

    def __init__(
        self,
        init: torch.Tensor,
        mask: torch.Tensor,
        *,
        prediction_type: str = "epsilon",
        before_model: bool = False,
        soft: SoftInpainting | None = None,
        on_blend: Callable[[torch.Tensor, torch.Tensor, float | None], torch.Tensor] | None = None,
    ) -> None:
        self.init = init
        self.mask = mask.to(init)
        self.prediction_type = prediction_type
        self.before_model = before_model
        self.soft = soft
        self.on_blend = on_blend  # `InitLatents.on_blend`: sees (and may replace) every blend

    def _blend(self, current: torch.Tensor, sigma: float) -> torch.Tensor:
        if self.soft is not None:
            blended = self.soft.latent_blend(self.init, current, self.mask, sigma).to(current.dtype)
        else:
            blended = current * self.mask + self.init * (1 - self.mask)
        if self.on_blend is not None:
            blended = self.on_blend(current, blended, sigma)
        return blended

    @hook(HookPoint.PRE_MODEL_CALL, order=-100)
    def blend_input(self, call: DenoiserCall) -> None:
        if self.before_model:
            call.x = self._blend(call.x, call.sigma or 0.0)

    @hook(HookPoint.POST_CFG, order=-100)
    def blend_denoised(self, out: DenoiserOutput) -> None:
        sigma = out.call.sigma
        if self.before_model or sigma is None or sigma <= 0:
            return
        a, b = _alpha(sigma)
        x, pred = out.call.x, out.output
        if self.soft is None and self.on_blend is None:  # linear blend in prediction space: exact where the
            # mask is 0 or 1
            if self.prediction_type == "v_prediction":
                kept = (a * x - self.init) / b
            else:
                kept = (x - a * self.init) / b
            out.output = pred * self.mask + kept * (1 - self.mask)
            return
        if self.prediction_type == "v_prediction":
            x0 = a * x - b * pred
            blended = self._blend(x0, sigma)
            out.output = (a * x - blended) / b
        else:
            x0 = (x - b * pred) / a
            blended = self._blend(x0, sigma)
            out.output = (x - a * blended) / b

    @hook(HookPoint.POST_LOOP, order=-100)
    def final_blend(self, context: LoopContext) -> None:
        if context.total_steps <= 0:  # no step ran: the init itself
            return
        current = context.latents
        blended = current if self.soft is not None else current * self.mask + self.init * (1 - self.mask)
        if self.on_blend is not None:
            blended = self.on_blend(current, blended, None)
        context.latents = blended


def plan_start(init: InitLatents, filled: torch.Tensor, noise: torch.Tensor, plan: StepPlan):
    """The loop's `PartialStart` for a plan: the filled init, the noise times the noise multiplier."""
    from modules.sumi.engine.sampling.loop import PartialStart

    return PartialStart(filled, noise * init.noise_multiplier, plan.run_steps, plan.noise_back)


__all__ = [
    "FILLS",
    "InitLatents",
    "MaskBlend",
    "SoftInpainting",
    "StepPlan",
    "encode",
    "filled_init",
    "img2img_steps",
    "inpaint_conditioning",
    "needs_image_conditioning",
    "pix2pix_conditioning",
    "soft_latent_blend",
    "soft_overlay",
    "txt2img_conditioning",
    "validate_init",
]
