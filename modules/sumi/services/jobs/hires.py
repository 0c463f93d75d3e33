"""A1111's Hires. fix for txt2img (`StableDiffusionProcessingTxt2Img.init`, `sample`, `sample_hr_pass`).

Per batch: the first pass at `width` x `height` (or, with `firstpass_image`, that image instead: A1111's
✨ Upscale), then the hires pass:

- Size: "Upscale by" (`hr_scale`) gives int(width * scale) x int(height * scale); "Resize width/height to"
  (`hr_resize_x/y`) with one side 0 keeps the aspect ratio; with both set the image is scaled to cover
  that box and the latents are cropped around the centre (`truncate_x/y`, in latent pixels).
- Upscale: a latent mode (`engine.upscalers.latent`) interpolates the latents; any other upscaler
  decodes the first pass, resizes the images with the upscaler registry and encodes them again.
- Sampling: img2img from those latents with `denoising_strength`, `hr_second_pass_steps` (0: the job's
  steps; the strength then decides how many run, as img2img), the hires sampler, schedule type, CFG
  scale and prompts (their `<lora:...>` tags activated for this pass), and fresh noise drawn from the
  same seeds at the new size (variation seed, resize-seed-from and ENSD as in the first pass).
- Image-conditioned models: 9-channel inpainting models get A1111's conditioning of the upscaled
  image (latent path: the grey txt2img conditioning unless `inpainting_mask_weight` < 1).
- Hires checkpoint: that model for the pass (`model_switch.switched_model`), the job's model after.
- Scripts: `before_hr(p)` then `process_before_every_sampling` before the pass; `p.is_hr_pass` is True
  while it samples. ControlNet units honour sd-webui-controlnet's `hr_option`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any, TypeGuard

import numpy as np
import torch
from PIL import Image

from modules.sumi.engine import generate as engine
from modules.sumi.engine import img2img as engine_img2img
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.accel.tiled_vae import Tiled, TilingPolicy
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions.circular import model_modules
from modules.sumi.engine.sampling.samplers import find_sampler
from modules.sumi.engine.upscalers.latent import DEFAULT_LATENT_MODE, LATENT_MODES, upscale_latents
from modules.sumi.services.controlnet.service import PreparedControl, Target
from modules.sumi.services.jobs import refiner, token_merging, vae_tiling
from modules.sumi.services.jobs.hooks import JobContext
from modules.sumi.services.jobs.model_switch import switched_model
from modules.sumi.services.jobs.processing import (
    StableDiffusionProcessingTxt2Img,
    calculate_target_resolution,
    old_hires_fix_first_pass_dimensions,
    opt_f,
    target_size,
)
from modules.sumi.services.models.manager import LoadedModel, ModelManager
from modules.sumi.services.networks.added_network import add_network_to_prompt
from modules.sumi.services.networks.registry import parse_prompts
from modules.sumi.services.settings import limits as hard_limits

# What the UI's dropdowns show for "the first pass's" (A1111's labels; the job fields are then None).
USE_SAME_CHECKPOINT = "Use same checkpoint"
USE_SAME_SAMPLER = "Use same sampler"
USE_SAME_SCHEDULER = "Use same scheduler"
# sd-webui-controlnet's `hr_option` of a unit: in which passes of a hires job the unit works.
HR_BOTH, HR_LOW_RES_ONLY, HR_HIGH_RES_ONLY = "Both", "Low res only", "High res only"
BEFORE_HIRES_SUFFIX = "-before-highres-fix"


def is_enabled(p: Any) -> TypeGuard[StableDiffusionProcessingTxt2Img]:
    return isinstance(p, StableDiffusionProcessingTxt2Img) and bool(p.enable_hr)


def skips_first_pass(p: Any) -> bool:
    """A hires job given its first pass (`firstpass_image`, A1111's ✨ Upscale)."""
    return is_enabled(p) and p.firstpass_image is not None


def _same(value: Any, placeholder: str) -> Any:
    """None for "the first pass's" (None, "" or the UI's "Use same ..." label), else `value`."""
    return None if value in (None, "", placeholder) else value


# -- size --------------------------------------------------------------------------------------------


def final_size(p: StableDiffusionProcessingTxt2Img, scale: int = opt_f) -> tuple[int, int]:
    """The hires image's size: the target in latent pixels, less the crop."""
    return (
        (p.hr_upscale_to_x // scale - p.truncate_x) * scale,
        (p.hr_upscale_to_y // scale - p.truncate_y) * scale,
    )


def job_count(p: Any) -> int:
    """A1111: a hires job counts two jobs per batch (the ✨ Upscale of an image: one)."""
    if not is_enabled(p):
        return p.n_iter
    return p.n_iter if p.firstpass_image is not None else 2 * p.n_iter


# -- checks and preparation ----------------------------------------------------------------------------


def validate(p: Any, upscaler_find: Any, max_side: int, max_steps: int, old: bool = False) -> None:
    """InvalidRequestError for hires settings that cannot run (before the job is queued): a strength
    outside [0, 1], an unknown upscaler, sampler or schedule type, steps or CFG out of range, a first
    pass image that is not an image, or a hires size over `max_side` (the max_image_size setting)."""
    if not is_enabled(p):
        return
    strength = p.denoising_strength
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 <= strength <= 1:
        raise InvalidRequestError(f"denoising_strength must be from 0 to 1 for Hires. fix, got {strength!r}")
    if isinstance(p.hr_scale, bool) or not isinstance(p.hr_scale, (int, float)) or p.hr_scale <= 0:
        raise InvalidRequestError(f"hr_scale must be a number above 0, got {p.hr_scale!r}")
    for name, high in (
        ("hr_resize_x", max_side),
        ("hr_resize_y", max_side),
        ("hr_second_pass_steps", max_steps),
    ):
        value = getattr(p, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise InvalidRequestError(f"{name} must be an integer from 0 to {high}, got {value!r}")
    if p.hr_cfg is not None and (
        isinstance(p.hr_cfg, bool)
        or not isinstance(p.hr_cfg, (int, float))
        or not 0 <= p.hr_cfg <= hard_limits.CFG_SCALE_MAX
    ):
        raise InvalidRequestError(f"hr_cfg must be from 0 to {hard_limits.CFG_SCALE_MAX:g}, got {p.hr_cfg!r}")
    if p.hr_upscaler is not None and p.hr_upscaler not in LATENT_MODES:
        upscaler_find(p.hr_upscaler)  # InvalidRequestError naming the choices
    sampler = _same(p.hr_sampler_name, USE_SAME_SAMPLER) or p.sampler_name or "Euler"
    find_sampler(sampler, _same(p.hr_scheduler, USE_SAME_SCHEDULER) or p.scheduler)
    image = p.firstpass_image
    if image is not None and not isinstance(image, Image.Image):
        raise InvalidRequestError(f"firstpass_image must be an image, got {type(image).__name__}")
    width, height = _first_pass_size(p)
    if old:
        width, height = old_hires_fix_first_pass_dimensions(p.width, p.height)
        resize = (p.width, p.height)
    else:
        resize = (p.hr_resize_x, p.hr_resize_y)
    x, y, tx, ty = target_size(width, height, p.hr_scale, *resize)
    final = ((x // opt_f - tx) * opt_f, (y // opt_f - ty) * opt_f)
    if max(x, y) > max_side or min(final) < opt_f:
        raise InvalidRequestError(
            f"the Hires. fix size {x}x{y} is outside 8..{max_side} pixels (the max_image_size setting)"
        )


def _first_pass_size(p: StableDiffusionProcessingTxt2Img) -> tuple[int, int]:
    image = p.firstpass_image
    if isinstance(image, Image.Image) and image.size != (p.width, p.height):
        return max(opt_f, image.width // opt_f * opt_f), max(opt_f, image.height // opt_f * opt_f)
    return p.width, p.height


def setup_prompts(p: Any, styles: Any) -> None:
    """A1111's `setup_prompts` for the hires pass: `all_hr_prompts` / `all_hr_negative_prompts`, one per
    image (an empty hires prompt is the prompt), with the job's styles applied."""
    if not is_enabled(p):
        return
    total = p.batch_size * p.n_iter
    prompt = p.hr_prompt if p.hr_prompt not in ("", None, []) else p.prompt
    negative = p.hr_negative_prompt if p.hr_negative_prompt not in ("", None, []) else p.negative_prompt
    p.all_hr_prompts = _per_image(prompt, total)
    p.all_hr_negative_prompts = _per_image(negative, total)
    if styles is not None and p.styles:
        p.all_hr_prompts = [styles.apply_styles_to_prompt(x, p.styles) for x in p.all_hr_prompts]
        p.all_hr_negative_prompts = [
            styles.apply_negative_styles_to_prompt(x, p.styles) for x in p.all_hr_negative_prompts
        ]


def _per_image(value: Any, total: int) -> list[str]:
    if isinstance(value, list):
        return [str(value[i % len(value)]) for i in range(total)] if value else [""] * total
    return [str(value or "")] * total


def _hr_prompt(p: Any, index: int, prompt_text: str, **_: Any) -> str | None:
    """Infotext `Hires prompt`: written when it differs from the image's prompt (A1111)."""
    prompts = getattr(p, "all_hr_prompts", None) or []
    value = prompts[index] if 0 <= index < len(prompts) else None
    return value if value is not None and value != prompt_text else None


def _hr_negative_prompt(p: Any, index: int, negative_prompt: str, **_: Any) -> str | None:
    prompts = getattr(p, "all_hr_negative_prompts", None) or []
    value = prompts[index] if 0 <= index < len(prompts) else None
    return value if value is not None and value != negative_prompt else None


@dataclasses.dataclass
class HiresContext:
    """What a txt2img job's `init` needs for its hires settings: the settings and the checkpoints."""

    options: Any
    models: ModelManager | None = None

    def init(self, p: StableDiffusionProcessingTxt2Img) -> None:
        prepare(p, self.options, self.models)


def prepare(p: StableDiffusionProcessingTxt2Img, options: Any, models: ModelManager | None) -> None:
    """A1111's txt2img `init` with Hires. fix on: the hires checkpoint, sampler, schedule type and
    upscale mode resolved, the target size computed, and the infotext keys written."""
    extra = p.extra_generation_params
    extra["Denoising strength"] = p.denoising_strength
    p.hr_checkpoint_name = _same(p.hr_checkpoint_name, USE_SAME_CHECKPOINT)
    if p.hr_checkpoint_name and models is not None:
        info = models.checkpoints.match(p.hr_checkpoint_name)
        if info is None:
            choices = ", ".join(models.checkpoints.titles()) or "none found"
            raise InvalidRequestError(
                f"Could not find checkpoint with name {p.hr_checkpoint_name!r}; choose from {choices}"
            )
        p.hr_checkpoint_info = info
        extra["Hires checkpoint"] = info.short_title
    p.hr_sampler_name = _same(p.hr_sampler_name, USE_SAME_SAMPLER)
    if p.hr_sampler_name is not None:
        p.hr_sampler_name = find_sampler(p.hr_sampler_name)[0].name
        if p.hr_sampler_name != p.sampler_name:
            extra["Hires sampler"] = p.hr_sampler_name
    extra["Hires prompt"] = _hr_prompt
    extra["Hires negative prompt"] = _hr_negative_prompt
    extra["Hires schedule type"] = None  # the pass writes it when it differs from the first pass's
    p.hr_scheduler = _same(p.hr_scheduler, USE_SAME_SCHEDULER) or p.scheduler
    mode = LATENT_MODES.get(p.hr_upscaler or DEFAULT_LATENT_MODE)
    p.latent_scale_mode = None if mode is None else {"mode": mode.mode, "antialias": mode.antialias}
    if p.firstpass_image is not None:
        p.width, p.height = _first_pass_size(p)
    calculate_target_resolution(p, bool(getattr(options, "use_old_hires_fix_width_height", False)))
    if p.hr_second_pass_steps:
        extra["Hires steps"] = p.hr_second_pass_steps
    if p.hr_upscaler is not None:
        extra["Hires upscaler"] = p.hr_upscaler
    if p.hr_cfg is not None and p.hr_cfg != p.cfg_scale:
        extra["Hires CFG Scale"] = int(p.hr_cfg) if float(p.hr_cfg).is_integer() else p.hr_cfg


def first_pass_units(p: Any, units: list[Any]) -> list[Any]:
    """ControlNet units of the first pass: with Hires. fix on, "High res only" units sit it out."""
    if not is_enabled(p):
        return units
    return pass_units(units, HR_HIGH_RES_ONLY)


def pass_units(units: list[Any], sitting_out: str) -> list[Any]:
    """The units of one pass of a hires job: those whose option is `sitting_out` are disabled, except
    InstantID's IP-Adapter unit right before an InstantID ControlNet that takes part: its ControlNet reads
    its face tokens (as the extension's does whatever the pass), so it stays, with weight 0."""
    out = []
    for i, unit in enumerate(units):
        if _hr_option(unit) != sitting_out:
            out.append(unit)
            continue
        following = units[i + 1] if i + 1 < len(units) else None
        feeds_instant_id = (
            unit.enabled
            and following is not None
            and following.enabled
            and _hr_option(following) != sitting_out
            and _is_instant_id(unit)
            and _is_instant_id(following)
        )
        out.append(
            dataclasses.replace(unit, weight=0.0)
            if feeds_instant_id
            else dataclasses.replace(unit, enabled=False)
        )
    return out


def _is_instant_id(unit: Any) -> bool:
    model = str(getattr(unit, "model", "") or "").lower()
    return "instant_id" in model or "instantid" in model


def _hr_option(unit: Any) -> str:
    return getattr(unit, "hr_option", HR_BOTH) or HR_BOTH


# -- the hires pass ----------------------------------------------------------------------------------


class HiresFix:
    """One batch of a hires job: the first pass (or `firstpass_image`), then the hires pass. `service` is
    the job's `GenerationService` (its engine call, saving, warnings, upscalers and ControlNet)."""

    def __init__(
        self,
        service: Any,
        p: StableDiffusionProcessingTxt2Img,
        loaded: LoadedModel,
        job: JobContext,
    ) -> None:
        self.service = service
        self.p = p
        self.loaded = loaded
        self.job = job
        self.tiling = vae_tiling.policy(service.options, p)

    def sample(self, request: engine.BatchRequest) -> engine.BatchResult:
        service, p = self.service, self.p
        first = self._first_pass(request)
        service._warn(p, first.warnings)  # noqa: SLF001
        vae_tiling.record(p, first.vae_tiled)
        if service.state.interrupted:  # A1111: an interrupted job keeps its first pass
            return first
        self._save_before_hires(first)
        service.state.nextjob()
        with self._hires_model() as loaded:
            return self._second_pass(request, first, loaded)

    # -- first pass
    def _first_pass(self, request: engine.BatchRequest) -> engine.BatchResult:
        p = self.p
        if p.firstpass_image is None:
            service = self.service
            with contextlib.ExitStack() as refined:  # hires_fix_refiner_pass "first pass"/"both passes"
                switch = refiner.model_switch(p, service.models, service.options, self.loaded, refined)
                return service._generate(p, self.loaded, request, self.job, switch)  # noqa: SLF001
        image = p.firstpass_image.convert("RGB")
        if image.size != (p.width, p.height):
            image = image.resize((p.width, p.height), Image.Resampling.LANCZOS)
        images = [image] * request.batch_size
        latents = None
        if p.latent_scale_mode is not None:  # A1111 encodes the image for the latent upscale
            latents = self._encode(self.loaded.sd, _pixels(images).to(self.loaded.sd.device))
        return engine.BatchResult(images, latents, request.sampler, request.schedule)  # pyright: ignore[reportArgumentType]

    def _save_before_hires(self, first: engine.BatchResult) -> None:
        """Setting `save_images_before_highres_fix`: the first pass saved with the suffix
        `-before-highres-fix` (not for ✨ Upscale, whose first pass is an image already saved)."""
        service, p = self.service, self.p
        if p.firstpass_image is not None or not service.options.save_images_before_highres_fix:
            return
        for i, image in enumerate(first.images):
            index = min(p.iteration * p.batch_size + i, len(p.all_seeds) - 1)
            infotext = service.infotext(p, self.loaded, index, first.schedule)
            service._save(p, image, index, infotext, BEFORE_HIRES_SUFFIX)  # noqa: SLF001

    @contextlib.contextmanager
    def _hires_model(self) -> Iterator[LoadedModel]:
        """The hires checkpoint's model for the pass (p.sd_model shows it), or the job's."""
        p, service = self.p, self.service
        if p.hr_checkpoint_info is None:
            yield self.loaded
            return
        before = p.sd_model
        with switched_model(service.models, p.hr_checkpoint_info.title) as loaded:
            if self.job.tiles is not None:  # a tiled job tiles the hires checkpoint too
                self.job.tiles.include(*model_modules(loaded.sd))
            p.sd_model = service.model_view(loaded)
            try:
                yield loaded
            finally:
                p.sd_model = before

    # -- second pass
    def _second_pass(
        self, request: engine.BatchRequest, first: engine.BatchResult, loaded: LoadedModel
    ) -> engine.BatchResult:
        service, p = self.service, self.p
        p.is_hr_pass = True
        try:
            latents, conditioning = self._upscaled(first, loaded)
            latents, conditioning = (
                _truncated(latents, p.truncate_x, p.truncate_y),
                _truncated(conditioning, p.truncate_x, p.truncate_y),
            )
            p.rng = service.batch_rng(
                p, loaded, (latents.shape[-2], latents.shape[-1])
            )  # A1111's hires p.rng
            prompts = self._activate_networks()
            job = self._job(loaded, latents)
            scale = loaded.sd.vae_scale
            hr_request = dataclasses.replace(
                request,
                prompts=prompts,
                negative_prompts=p.hr_negative_prompts,
                width=latents.shape[-1] * scale,
                height=latents.shape[-2] * scale,
                steps=p.hr_second_pass_steps or p.steps,
                cfg_scale=float(p.hr_cfg) if p.hr_cfg is not None else p.cfg_scale,
                sampler=p.hr_sampler_name or request.sampler,
                schedule=p.hr_scheduler or request.schedule,
                token_override=job.embeddings,
                control_units=job.control.units,
                noise_rng=None,  # a script's p.rng is the first pass's
                first_pass_steps=_model_calls(request.sampler, request.steps),
                token_merging_ratio=token_merging.ratio(p, service.options, hires_pass=True),
                init=engine_img2img.InitLatents(
                    latents=latents,
                    strength=float(p.denoising_strength or 0.0),
                    fix_steps=bool(service.options.img2img_fix_steps),
                    image_conditioning=conditioning,
                ),
            )
            if p.scripts is not None:
                p.scripts.before_hr(p)
                p.scripts.process_before_every_sampling(p, x=latents, noise=None, c=None, uc=None)
            with contextlib.ExitStack() as refined:  # the refiner (default: in this pass), then back
                switch = refiner.model_switch(
                    p, service.models, service.options, loaded, refined, hires_pass=True
                )
                result = service._generate(p, loaded, hr_request, job, switch)  # noqa: SLF001
            if result.schedule != first.schedule:
                p.extra_generation_params["Hires schedule type"] = result.schedule
            if job.control.blends:
                images, warnings = job.control.post_process(result.images)
                service._warn(p, warnings)  # noqa: SLF001
                result = dataclasses.replace(result, images=images)
            # the infotext's Sampler and Schedule type are the first pass's (the hires ones have their keys)
            return dataclasses.replace(result, sampler=first.sampler, schedule=first.schedule)
        finally:
            p.is_hr_pass = False

    def _upscaled(
        self, first: engine.BatchResult, loaded: LoadedModel
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The latents the hires pass starts from, at the target size, and the UNet's image conditioning."""
        p, model = self.p, loaded.sd
        scale = model.vae_scale
        width, height = p.hr_upscale_to_x, p.hr_upscale_to_y
        kind = engine_img2img.needs_image_conditioning(model)
        weight = float(getattr(p, "inpainting_mask_weight", self.service.options.inpainting_mask_weight))
        if p.latent_scale_mode is not None:
            name = p.hr_upscaler or DEFAULT_LATENT_MODE
            small = first.latents.to(device=model.device, dtype=model.dtype)
            latents = upscale_latents(small, name, height // scale, width // scale)
            if kind is None:
                return latents, None
            if weight >= 1.0:  # A1111 skips the decode: the conditioning of no image
                h, w = latents.shape[-2:]
                return latents, engine_img2img.txt2img_conditioning(
                    model, latents.shape[0], h * scale, w * scale
                )
            tiled: list[Tiled] = []
            pixels = vae_ops.decode(model, latents, tiling=self.tiling, tiled=tiled) * 2 - 1
            vae_tiling.record(p, tiled)
            return latents, _image_conditioning(model, kind, pixels, weight, self.tiling)
        upscalers = self.service.upscalers
        images = [
            upscalers.resize(image.convert("RGB"), width, height, p.hr_upscaler) for image in first.images
        ]
        pixels = _pixels(images).to(model.device)
        latents = self._encode(model, pixels)
        return latents, None if kind is None else _image_conditioning(
            model, kind, pixels, weight, self.tiling
        )

    def _encode(self, model: Any, pixels: torch.Tensor) -> torch.Tensor:
        tiled: list[Tiled] = []
        latents = engine_img2img.encode(model, pixels, self.tiling, tiled)
        vae_tiling.record(self.p, tiled)
        return latents

    def _activate_networks(self) -> list[str]:
        """The batch's hires prompts without their `<...>` tags; the tags' networks are activated for
        this pass (A1111's `hr_extra_network_data`)."""
        service, p = self.service, self.p
        window = slice(p.iteration * p.batch_size, (p.iteration + 1) * p.batch_size)
        p.hr_prompts = p.all_hr_prompts[window]
        p.hr_negative_prompts = p.all_hr_negative_prompts[window]
        stripped, data = parse_prompts(p.hr_prompts)
        p.hr_extra_network_data = data
        if not p.disable_extra_networks:
            add_network_to_prompt(p, data, service.options, service.known_lora, write_prompts=False)
            service._warn(p, service.extra_networks.activate(p, data))  # noqa: SLF001
        return stripped

    def _job(self, loaded: LoadedModel, latents: torch.Tensor) -> JobContext:
        """Embeddings, ControlNet units (prepared at the hires size, by `hr_option`) and the conditioning
        cache of the pass; another checkpoint gets its own."""
        service, p = self.service, self.p
        same_model = loaded is self.loaded
        embeddings = self.job.embeddings if same_model else service._embedding_hook(loaded)  # noqa: SLF001
        cache = self.job.conditioning_cache if same_model else {}
        control = PreparedControl()
        units = [u for u in pass_units(list(p.controlnet_units), HR_LOW_RES_ONLY) if u.enabled]
        if units and service.controlnet is not None:
            scale = loaded.sd.vae_scale
            target = Target(
                latents.shape[-1] * scale,
                latents.shape[-2] * scale,
                latents.shape[0],
                p.seed + max(p.subseed, 0),
                hires_pass=True,
                image_seed=p.seed,
            )
            control = service.controlnet.prepare(units, loaded.sd, target)
        return JobContext(embeddings, control, cache)


def _model_calls(sampler: str, steps: int) -> int:
    """A1111's `total_steps`: model calls of `steps` steps (twice as many for second-order samplers)."""
    return steps * 2 if find_sampler(sampler)[0].second_order else steps


def _truncated(latents: torch.Tensor | None, truncate_x: int, truncate_y: int) -> Any:
    """A1111's centre crop of the latents for "Resize to" with both sides set."""
    if latents is None or (truncate_x == 0 and truncate_y == 0):
        return latents
    h, w = latents.shape[-2:]
    return latents[
        :, :, truncate_y // 2 : h - (truncate_y + 1) // 2, truncate_x // 2 : w - (truncate_x + 1) // 2
    ]


def _pixels(images: list[Image.Image]) -> torch.Tensor:
    """RGB images as a (B, 3, H, W) batch in [-1, 1]."""
    arrays = np.stack([np.asarray(i.convert("RGB"), dtype=np.float32) / 255.0 for i in images])
    return torch.from_numpy(arrays).permute(0, 3, 1, 2) * 2 - 1


def _image_conditioning(
    model: Any, kind: str, pixels: torch.Tensor, weight: float, tiling: TilingPolicy
) -> torch.Tensor:
    """A1111's `img2img_image_conditioning` of the upscaled image, with no mask (all redrawn)."""
    if kind == "pix2pix":
        return engine_img2img.pix2pix_conditioning(model, pixels, tiling)
    return engine_img2img.inpaint_conditioning(model, pixels, None, mask_weight=weight, tiling=tiling)


# -- infotext -> job fields (paste) --------------------------------------------------------------------


def fields_from_infotext(params: dict[str, str]) -> dict[str, Any]:
    """The Hires. fix fields an infotext (parsed, with A1111's defaults) sets, as the txt2img tab's
    controls hold them ("Use same ..." for the first pass's). `enable_hr` follows A1111's rule: on when
    the infotext has a denoising strength and a hires upscale, upscaler or resize."""
    fields: dict[str, Any] = {}
    fields["enable_hr"] = "Denoising strength" in params and any(
        k in params for k in ("Hires upscale", "Hires upscaler", "Hires resize-1")
    )
    readers: dict[str, tuple[str, Any]] = {
        "Denoising strength": ("denoising_strength", float),
        "Hires upscale": ("hr_scale", float),
        "Hires steps": ("hr_second_pass_steps", lambda v: int(float(v))),
        "Hires resize-1": ("hr_resize_x", lambda v: int(float(v))),
        "Hires resize-2": ("hr_resize_y", lambda v: int(float(v))),
        "Hires CFG Scale": ("hr_cfg", float),
    }
    for key, (name, read) in readers.items():
        if key in params:
            try:
                fields[name] = read(params[key])
            except (TypeError, ValueError):
                continue
    texts = {
        "Hires upscaler": "hr_upscaler",
        "Hires checkpoint": "hr_checkpoint_name",
        "Hires prompt": "hr_prompt",
        "Hires negative prompt": "hr_negative_prompt",
    }
    for key, name in texts.items():
        if key in params:
            fields[name] = str(params[key])
    if "Hires sampler" in params or "Hires schedule type" in params:
        fields["hr_sampler_name"], fields["hr_scheduler"] = _hr_sampler_and_scheduler(params)
    return fields


def _hr_sampler_and_scheduler(params: dict[str, str]) -> tuple[str, str]:
    """A1111's `get_hr_sampler_and_scheduler`: old names such as "DPM++ 2M Karras" split; a schedule
    type equal to the first pass's is "Use same scheduler"."""
    sampler = params.get("Hires sampler", USE_SAME_SAMPLER) or USE_SAME_SAMPLER
    schedule = params.get("Hires schedule type", USE_SAME_SCHEDULER) or USE_SAME_SCHEDULER
    if sampler != USE_SAME_SAMPLER:
        try:
            spec, stype = find_sampler(sampler, None if schedule == USE_SAME_SCHEDULER else schedule)
        except InvalidRequestError:
            return USE_SAME_SAMPLER, USE_SAME_SCHEDULER
        sampler = spec.name
        if schedule == USE_SAME_SCHEDULER and stype.label not in ("Automatic", params.get("Schedule type")):
            schedule = stype.label  # the schedule an old combined name held
    if schedule != USE_SAME_SCHEDULER and schedule == params.get("Schedule type"):
        schedule = USE_SAME_SCHEDULER
    return sampler, schedule
