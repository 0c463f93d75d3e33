"""One batch of images: encode the prompts, draw the noise, sample, decode.

Every mode goes through `generate`: txt2img from noise; img2img and inpainting from `BatchRequest.init`
(`engine.img2img.InitLatents`: strength, mask, fills, image conditioning; see that module); hires fix
will start from other latents too. No files, no settings, no globals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from modules.sumi.engine import img2img
from modules.sumi.engine import nan_check as nans
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.accel import compiled
from modules.sumi.engine.accel.tiled_vae import Tiled, TilingPolicy
from modules.sumi.engine.accel.token_merging import TokenMerging
from modules.sumi.engine.controlnet.colorfix import ColorFixExtension, ColorFixUnit
from modules.sumi.engine.controlnet.control import ControlNetExtension, ControlUnit, validate_units
from modules.sumi.engine.controlnet.ip_adapter import ImagePromptExtension, ImagePromptUnit
from modules.sumi.engine.controlnet.lama import lama_noise
from modules.sumi.engine.controlnet.lllite import LLLiteExtension, LLLiteUnit
from modules.sumi.engine.controlnet.reference import ReferenceExtension, ReferenceUnit
from modules.sumi.engine.controlnet.revision import RevisionExtension, RevisionUnit
from modules.sumi.engine.controlnet.style_adapter import StyleTokensExtension, StyleTokensUnit
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import (
    Extension,
    ExtensionManager,
    HookPoint,
    PromptEncoder,
    StartingNoise,
)
from modules.sumi.engine.families.sdxl_refiner import NAME as SDXL_REFINER
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling import loop
from modules.sumi.engine.sampling.denoiser import CFGDenoiser, Guidance
from modules.sumi.engine.sampling.image_rng import NoiseSource
from modules.sumi.engine.sampling.loop_types import ExtraNoiseHook
from modules.sumi.engine.sampling.model_switch import ModelSwitch, switch_test
from modules.sumi.engine.sampling.noise import Generator, image_noise, make_generators, noise_device
from modules.sumi.engine.sampling.samplers import BuiltScheduler, build_scheduler, call_sigma
from modules.sumi.engine.sampling.training_noise import training_alphas
from modules.sumi.engine.sampling.tuning import SamplerTuning
from modules.sumi.engine.text import schedule
from modules.sumi.engine.text.encoder import TokenOverride
from modules.sumi.engine.text.schedule import JobConditioning, PromptOptions

VAE_REVERTED = (
    "The VAE produced NaN values in {dtype}, so it was switched to 32-bit floats and the images decoded "
    "again (setting 'Automatically revert VAE to 32-bit floats'); --no-half-vae starts it in 32-bit floats."
)


ControlUnitKind = (
    ControlUnit | ImagePromptUnit | ReferenceUnit | StyleTokensUnit | LLLiteUnit | ColorFixUnit | RevisionUnit
)


@dataclass
class BatchRequest:
    """One batch of images that share size, steps and sampler; prompts and seeds are per image."""

    prompts: list[str]
    negative_prompts: list[str]
    seeds: list[int]
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    sampler: str = "Euler a"
    schedule: str = "Automatic"
    clip_skip: int = 1
    subseeds: list[int] = field(default_factory=list)
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None  # (width, height) in pixels
    eta_ancestral: float = 1.0
    eta_ddim: float = 0.0
    eta_noise_seed_delta: int = 0
    noise_device: str = "cpu"  # "cpu" (reproducible everywhere), "gpu", or "nv" (A1111's NV: CUDA's numbers)
    emphasis: str = "Original"
    comma_padding_backtrack: int = 20
    use_old_scheduling: bool = False
    pad_cond_uncond: bool = False
    token_override: TokenOverride | None = None  # textual-inversion embeddings for this job
    # enabled ControlNet units (T2I-Adapters among them), IP-Adapter, reference and style adapter units
    control_units: list[ControlUnitKind] = field(default_factory=list)
    init: img2img.InitLatents | None = None  # img2img/inpainting: what the batch starts from; None: txt2img
    first_pass_steps: int | None = (
        None  # hires fix's second pass: the first pass's model calls (prompt edits)
    )
    noise_x0: torch.Tensor | None = None  # ControlNet inpaint_only+lama: latents mixed into the noise
    aesthetic_score: float = 6.0  # SDXL refiner: the prompt's (A1111's sdxl_refiner_high_aesthetic_score)
    negative_aesthetic_score: float = 2.5  # and the negative prompt's (sdxl_refiner_low_aesthetic_score)
    vae_tiling: TilingPolicy | None = None  # tiled VAE (engine.accel.tiled_vae); None: plain passes
    tuning: SamplerTuning = field(default_factory=SamplerTuning)  # A1111's sampler parameters
    token_merging_ratio: float = 0.0  # ToMe on the UNet for the batch (accel.token_merging); 0 off
    extra_noise_hook: ExtraNoiseHook | None = None  # img2img extra noise: A1111's on_extra_noise
    # a script's own `p.rng` (an ImageRNG, or anything with A1111's `next()`): the starting noise is its
    # next() and the sampler's noise its `generators`' draws (the seeds' when it has none); None: the seeds'
    noise_rng: NoiseSource | None = None

    @property
    def batch_size(self) -> int:
        return len(self.prompts)


@dataclass
class BatchResult:
    images: list[Image.Image]
    latents: torch.Tensor
    sampler: str
    schedule: str  # resolved schedule label, as the infotext writes it
    stopped_early: bool = False
    warnings: list[str] = field(default_factory=list)  # non-fatal problems the extensions met
    switched: bool = False  # the request's ModelSwitch happened: the last steps and decoding ran on its model
    vae_tiled: list[Tiled] = field(default_factory=list)  # VAE passes that ran in tiles, and why
    tuning: SamplerTuning = field(default_factory=SamplerTuning)  # the sampler parameters that applied
    uncond_skipped: frozenset[str] = frozenset()  # calls without the negative prompt: "early", "ngms"


def validate(request: BatchRequest, scale: int = 8) -> None:
    """Reject what cannot be sampled, with a message a user understands."""
    for name, value in (("width", request.width), ("height", request.height)):
        if value < scale or value % scale:
            raise InvalidRequestError(f"{name} must be a positive multiple of {scale}, got {value}")
    if request.steps < 1:
        raise InvalidRequestError(f"steps must be at least 1, got {request.steps}")
    if not (len(request.prompts) == len(request.negative_prompts) == len(request.seeds) >= 1):
        raise InvalidRequestError("prompts, negative prompts and seeds must be given for every image")
    controls = [u for u in request.control_units if isinstance(u, ControlUnit)]
    validate_units(controls, request.width, request.height, request.batch_size)


def _validate_init(model: SDModel, request: BatchRequest) -> None:
    init = request.init
    if init is None:
        return
    shape = (model.latent_channels, request.height // model.vae_scale, request.width // model.vae_scale)
    img2img.validate_init(init, request.batch_size, shape)
    kind = img2img.needs_image_conditioning(model)
    extra = int(model.unet.config["in_channels"]) - model.latent_channels
    given = init.image_conditioning
    if given is not None and (
        given.dim() != 4
        or given.shape[0] not in (1, request.batch_size)
        or given.shape[1] != extra
        or tuple(given.shape[2:]) != shape[1:]
    ):
        raise InvalidRequestError(
            f"image conditioning has shape {tuple(given.shape)}; this model takes (1 or "
            f"{request.batch_size}, {extra}, {shape[1]}, {shape[2]})"
        )
    if kind is not None and given is None:
        helper = "inpaint_conditioning" if kind == "inpaint" else "pix2pix_conditioning"
        raise InvalidRequestError(
            f"this {kind} model needs image conditioning for img2img (engine.img2img.{helper})"
        )


def generate(
    model: SDModel,
    request: BatchRequest,
    *,
    callback: Callable[[loop.StepInfo], None] | None = None,
    control: loop.SamplingControl | None = None,
    extensions: Sequence[Extension] = (),
    progress_bar: bool = True,
    conditioning_cache: dict | None = None,
    nan_check: bool = True,
    vae_fallback: bool = True,
    switch: ModelSwitch | None = None,
    interrupt_decode: Callable[[SDModel, torch.Tensor], list[Image.Image]] | None = None,
) -> BatchResult:
    """Sample and decode one batch with `extensions` (after the request's ControlNet units) hooked into
    the loop and their patches applied from text encoding to decoding.

    `switch` (the refiner): from its switch point the rest of the same schedule (same scheduler state,
    same noise generators) runs on its model, with the prompts encoded by that model's text encoders,
    and that model decodes (A1111's `apply_refiner`; see `sampling.model_switch`).

    `nan_check` (off: A1111's `--disable-nan-check`): NaN or infinity in the sampled latents or the decoded
    pixels raises NansException saying where, instead of giving black images. `vae_fallback` (A1111's
    `auto_vae_precision`): a half-precision VAE that gives NaN is switched to fp32 and run again first.
    `interrupt_decode` (A1111's `live_preview_fast_interrupt`): an interrupted batch is decoded by it (the
    live preview method) instead of the VAE."""
    validate(request, model.vae_scale)
    _validate_init(model, request)
    built = build_scheduler(
        request.sampler,
        request.schedule,
        model.scheduler_config,
        eta_ancestral=request.eta_ancestral,
        eta_ddim=request.eta_ddim,
        seed=request.seeds[0],
        seeds=request.seeds,
        is_sdxl=model.is_sdxl,
        tuning=request.tuning,
    )
    schedule_steps = request.steps * 2 if built.spec.second_order else request.steps
    init = request.init
    plan = (
        None
        if init is None
        else img2img.img2img_steps(built.spec, request.steps, init.strength, init.fix_steps)
    )
    filled = None if init is None else _filled_init(model, request, init)
    manager = ExtensionManager(
        _batch_extensions(model, request, extensions, _mask_blend(model, built, filled, init, extensions))
    )
    with manager.patched(model) as scope:
        guidance = conditioning(
            model, request, schedule_steps, conditioning_cache, manager.conditioning_key()
        )
        manager.encode_prompts(
            request.prompts,
            request.negative_prompts,
            _prompt_encoder(model, request, schedule_steps, conditioning_cache, manager.conditioning_key()),
        )
        image_conditioning = (
            img2img.txt2img_conditioning(
                model, request.batch_size, request.height, request.width, request.vae_tiling
            )
            if init is None
            else init.image_conditioning
        )
        denoiser = CFGDenoiser(
            compiled.unet_for_job(model, manager),
            guidance,
            schedule_steps,
            manager,
            sigma_of=lambda t: call_sigma(built.scheduler, t),
            image_conditioning=None
            if image_conditioning is None
            else image_conditioning.to(device=model.device, dtype=model.dtype).expand(
                request.batch_size, -1, -1, -1
            ),
            image_cfg_scale=None if init is None else init.image_cfg_scale,
            skipping=built.tuning.skipping,
        )
        generators, noise = initial_noise(model, request)
        noise = manager.starting_noise(
            StartingNoise(
                noise,
                filled,
                guidance.time_ids,
                None if callback is None else lambda i, n, x: callback(loop.StepInfo(i, n, x, None)),
                None if control is None else lambda: control.should_stop,
                lambda batch: manager.run(HookPoint.UNET_FORWARD, batch),
            )
        )
        start = None
        if init is not None and plan is not None and filled is not None:
            start = img2img.plan_start(init, filled, noise, plan)
            start.extra_noise, start.extra_noise_hook = built.tuning.extra_noise, request.extra_noise_hook
        pause = None if switch is None else loop.Pause(switch_test(switch, built))
        latents = loop.sample(
            denoiser,
            built,
            noise,
            request.steps if plan is None else plan.schedule_steps,
            generators=generators,
            callback=callback,
            control=control,
            progress_bar=progress_bar,
            extensions=manager,
            start=start,
            pause=pause,
        )
        if pause is None or not pause.stopped:
            if nan_check:
                nans.check_output(latents, "unet", model.dtype, request.seeds)
            stopped = control is not None and control.should_stop
            if stopped and control is not None and control.interrupted and interrupt_decode is not None:
                images, warnings, tiled = interrupt_decode(model, latents), [], []
            else:
                images, warnings, tiled = _decode(
                    model, latents, request, nan_check=nan_check, vae_fallback=vae_fallback
                )
            scope.completed = not stopped
            return BatchResult(
                images,
                latents,
                built.spec.name,
                built.schedule.label,
                stopped,
                [*manager.warnings(), *warnings],
                vae_tiled=tiled,
                tuning=built.tuning,
                uncond_skipped=frozenset(denoiser.skipped),
            )
    # The switch: the main model's patches are off again (its scope did not complete); the rest runs on
    # the other model.
    stage = _Stage(
        request, built, generators, schedule_steps, image_conditioning, init, pause, denoiser.skipped
    )
    try:
        other = switch.load() if switch is not None else model
        return _continue_on(
            other,
            model,
            stage,
            latents,
            manager,
            callback=callback,
            control=control,
            progress_bar=progress_bar,
            conditioning_cache=conditioning_cache,
            nan_check=nan_check,
            vae_fallback=vae_fallback,
        )
    finally:
        pause.close()  # a sampler run stopped at the switch ends here if it was not resumed


def _decode(
    model: SDModel, latents: torch.Tensor, request: BatchRequest, *, nan_check: bool, vae_fallback: bool
) -> tuple[list[Image.Image], list[str], list[Tiled]]:
    """The batch's images, a warning when the VAE had to be switched to fp32 for them or ran out of
    memory (and was tiled), and the passes that ran in tiles."""
    dtype = model.vae.dtype
    tiled: list[Tiled] = []
    pixels = vae_ops.decode(
        model,
        latents,
        nan_fallback=vae_fallback,
        nan_check=nan_check,
        seeds=request.seeds,
        tiling=request.vae_tiling,
        tiled=tiled,
    )
    warnings = [event.message() for event in tiled if event.reason == "out of memory"]
    if model.vae.dtype != dtype:
        warnings.append(VAE_REVERTED.format(dtype=str(dtype).removeprefix("torch.")))
    return vae_ops.to_pil(pixels), warnings, tiled


def _batch_extensions(
    model: SDModel,
    request: BatchRequest,
    extensions: Sequence[Extension],
    mask_blend: Extension | None = None,
) -> list[Extension]:
    """The request's own extensions (ControlNet, IP-Adapter, reference, the img2img mask blend) first,
    then the caller's."""
    controls = [u for u in request.control_units if isinstance(u, ControlUnit)]
    prompts = [u for u in request.control_units if isinstance(u, ImagePromptUnit)]
    references = [u for u in request.control_units if isinstance(u, ReferenceUnit)]
    styles = [u for u in request.control_units if isinstance(u, StyleTokensUnit)]
    lllites = [u for u in request.control_units if isinstance(u, LLLiteUnit)]
    color_fixes = [u for u in request.control_units if isinstance(u, ColorFixUnit)]
    revisions = [u for u in request.control_units if isinstance(u, RevisionUnit)]
    own: list[Extension] = [StyleTokensExtension(styles)] if styles else []
    if revisions:  # the extension zeroes the text when asked to, or when there is no text at all
        no_text = not any(request.prompts) and not any(request.negative_prompts)
        own.append(RevisionExtension(revisions, any(u.ignore_prompt for u in revisions) or no_text))
    if controls:
        own.append(ControlNetExtension(controls))
    if lllites:
        own.append(LLLiteExtension(lllites))
    if prompts:
        own.append(ImagePromptExtension(prompts))
    if references:
        alphas = training_alphas(model.scheduler_config)
        own.append(ReferenceExtension(references, alphas, model.is_sdxl, request.seeds[0]))
    if color_fixes:
        v_prediction = model.prediction_type == "v_prediction"
        own.append(ColorFixExtension(color_fixes, training_alphas(model.scheduler_config), v_prediction))
    if mask_blend is not None:
        own.append(mask_blend)
    if request.token_merging_ratio > 0:
        own.append(TokenMerging(request.token_merging_ratio))
    return [*own, *extensions]


def _filled_init(model: SDModel, request: BatchRequest, init: img2img.InitLatents) -> torch.Tensor:
    """The init latents on the model's device, after the masked-content fill."""
    filled = img2img.filled_init(init, request.seeds, noise_device(request.noise_device, model.device))
    return filled.to(device=model.device, dtype=model.latent_dtype)


def _mask_blend(
    model: SDModel,
    built: BuiltScheduler,
    filled: torch.Tensor | None,
    init: img2img.InitLatents | None,
    extensions: Sequence[Extension] = (),
) -> Extension | None:
    if init is None or init.mask is None or filled is None:
        return None
    soft = next((e for e in extensions if isinstance(e, img2img.SoftInpainting)), None)
    return img2img.MaskBlend(
        filled,
        init.mask.to(device=model.device, dtype=model.latent_dtype),
        prediction_type=model.prediction_type,
        before_model=built.spec.timestep_sampler,
        soft=soft,
        on_blend=init.on_blend,
    )


@torch.no_grad()
def conditioning(
    model: SDModel,
    request: BatchRequest,
    schedule_steps: int | None = None,
    cache: dict | None = None,
    patches: tuple = (),
) -> Guidance:
    """Text conditioning for the batch: AND parts and prompt-editing schedules for `schedule_steps`
    model calls (A1111: twice the steps for second-order samplers), and SDXL's size conditioning.
    `cache` (one dict per job) keeps batches with the same prompts, and the same text-encoder
    `patches` (`ExtensionManager.conditioning_key()`), from encoding them again."""
    options = PromptOptions(
        clip_skip=request.clip_skip if model.family == "SD1" else 1,  # A1111 ignores it for SD2 and SDXL
        emphasis=request.emphasis,
        comma_padding_backtrack=request.comma_padding_backtrack,
        use_old_scheduling=request.use_old_scheduling,
        zero_empty_negative=model.is_sdxl,
        pad_cond_uncond=request.pad_cond_uncond,
        token_override=request.token_override,
        first_pass_steps=request.first_pass_steps,
    )
    steps = schedule_steps or request.steps
    key = (tuple(request.prompts), tuple(request.negative_prompts), steps, repr(options), patches)
    if cache is None or key not in cache:
        jc = schedule.build(model.text_encoders, request.prompts, request.negative_prompts, steps, options)
        if cache is not None:
            cache[key] = jc
    if model.family == SDXL_REFINER:
        time_ids, uncond_time_ids = _refiner_time_ids(model, request)
    else:
        time_ids, uncond_time_ids = _sdxl_time_ids(model, request), None
    return Guidance(cache[key] if cache is not None else jc, request.cfg_scale, time_ids, uncond_time_ids)


def _prompt_encoder(
    model: SDModel, request: BatchRequest, schedule_steps: int, cache: dict | None, patches: tuple
) -> PromptEncoder:
    """Encodes other prompts the way `conditioning` encoded the batch's (for `Extension.encode_prompts`)."""

    def encode(prompts: Sequence[str], negative_prompts: Sequence[str]) -> JobConditioning:
        other = replace(request, prompts=list(prompts), negative_prompts=list(negative_prompts))
        return conditioning(model, other, schedule_steps, cache, patches).conditioning

    return encode


def _refiner_time_ids(model: SDModel, request: BatchRequest) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, w, crop top, crop left, aesthetic score) per image: the high score for the prompt, the low
    one for the negative prompt (sgm's aesthetic_score embedder; diffusers' requires_aesthetics_score)."""
    h, w = request.height, request.width
    rows = [
        torch.tensor([[h, w, 0, 0, score]], dtype=model.dtype, device=model.device).repeat(
            request.batch_size, 1
        )
        for score in (request.aesthetic_score, request.negative_aesthetic_score)
    ]
    return rows[0], rows[1]


def _sdxl_time_ids(model: SDModel, request: BatchRequest) -> torch.Tensor | None:
    if not model.is_sdxl:
        return None
    h, w = request.height, request.width
    time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=model.dtype, device=model.device)
    return time_ids.repeat(request.batch_size, 1)


def initial_noise(model: SDModel, request: BatchRequest) -> tuple[list[Generator], torch.Tensor]:
    """Per-image generators (they continue into the sampler's noise) and the starting noise."""
    source = noise_device(request.noise_device, model.device)
    if request.noise_rng is not None:
        return _script_noise(model, request, source)
    generators = make_generators(request.seeds, source)
    scale = model.vae_scale
    shape = (model.latent_channels, request.height // scale, request.width // scale)
    resize = None
    if request.seed_resize_from and all(v > 0 for v in request.seed_resize_from):
        resize = (request.seed_resize_from[1] // scale, request.seed_resize_from[0] // scale)
    noise = image_noise(
        shape,
        generators,
        subseeds=request.subseeds,
        subseed_strength=request.subseed_strength,
        seed_resize_from=resize,
    )
    if request.noise_x0 is not None:
        noise = lama_noise(noise, request.noise_x0, model.scheduler_config)
    if request.eta_noise_seed_delta:
        generators = make_generators([s + request.eta_noise_seed_delta for s in request.seeds], source)
    return generators, noise.to(device=model.device, dtype=model.latent_dtype)


def _script_noise(
    model: SDModel, request: BatchRequest, source: torch.device | str
) -> tuple[list[Generator], torch.Tensor]:
    """The starting noise and generators of a script's `p.rng` (BatchRequest.noise_rng)."""
    rng = request.noise_rng
    assert rng is not None
    scale = model.vae_scale
    expected = (request.batch_size, model.latent_channels, request.height // scale, request.width // scale)
    if not callable(getattr(rng, "next", None)):
        raise InvalidRequestError(
            f"a script set p.rng to a {type(rng).__name__}, which has no next() to draw noise"
        )
    noise = rng.next()
    if not isinstance(noise, torch.Tensor) or tuple(noise.shape) != expected:
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise InvalidRequestError(
            f"a script's p.rng gave noise of shape {got}; this batch's latents are {expected} "
            "(make it with the batch's seeds and the latent size: height // 8, width // 8)"
        )
    if request.noise_x0 is not None:
        noise = lama_noise(noise, request.noise_x0, model.scheduler_config)
    generators = getattr(rng, "generators", None)
    if not isinstance(generators, list) or len(generators) != request.batch_size:
        seeds = [s + request.eta_noise_seed_delta for s in request.seeds]
        generators = make_generators(seeds, source)
    return generators, noise.to(device=model.device, dtype=model.latent_dtype)


# -- the model switch (refiner) ---------------------------------------------------------------------------


@dataclass
class _Stage:
    """What the run on the switched-to model continues from."""

    request: BatchRequest
    built: BuiltScheduler
    generators: list[Generator]
    schedule_steps: int
    image_conditioning: torch.Tensor | None
    init: img2img.InitLatents | None
    pause: loop.Pause
    skipped: set[str]  # the first model's denoiser's record of calls without the negative prompt


def _continue_on(
    other: SDModel,
    model: SDModel,
    stage: _Stage,
    latents: torch.Tensor,
    manager: ExtensionManager,
    *,
    callback: Callable[[loop.StepInfo], None] | None,
    control: loop.SamplingControl | None,
    progress_bar: bool,
    conditioning_cache: dict | None,
    nan_check: bool,
    vae_fallback: bool,
) -> BatchResult:
    """The rest of the schedule on `other`: its own text encoding, its UNet, its VAE. The batch's
    extensions go on with it when it is the same family as `model` (networks patch it as A1111's do);
    for another family only the img2img mask blend does (ControlNet and networks fit the main model)."""
    request, built = stage.request, stage.built
    check_switch(model, other)
    warnings: list[str] = []
    if other.family == model.family:
        ext = manager
    else:
        kept = [e for e in manager.extensions if isinstance(e, (img2img.MaskBlend, img2img.SoftInpainting))]
        if len(kept) < len(manager.extensions):
            warnings.append(
                f"The refiner is an {other.family} model and the model {model.family}: the batch's ControlNet "
                "units, extra networks and script hooks acted on the steps before the switch only"
            )
        ext = ExtensionManager(kept)
        request = replace(request, token_override=None)  # the embeddings fit the main model's encoders
    with ext.patched(other) as scope:
        key = (*ext.conditioning_key(), ("model", id(other)))
        guidance = conditioning(other, request, stage.schedule_steps, conditioning_cache, key)
        ext.encode_prompts(
            request.prompts,
            request.negative_prompts,
            _prompt_encoder(other, request, stage.schedule_steps, conditioning_cache, key),
        )
        extra = int(other.unet.config["in_channels"]) - other.latent_channels
        image = stage.image_conditioning
        if image is None or image.shape[1] != extra:
            image = img2img.txt2img_conditioning(
                other, request.batch_size, request.height, request.width, request.vae_tiling
            )
        denoiser = CFGDenoiser(
            compiled.unet_for_job(other, ext),
            guidance,
            stage.schedule_steps,
            ext,
            sigma_of=lambda t: call_sigma(built.scheduler, t),
            image_conditioning=None
            if image is None
            else image.to(device=other.device, dtype=other.dtype).expand(request.batch_size, -1, -1, -1),
            image_cfg_scale=None if stage.init is None else stage.init.image_cfg_scale,
            skipping=built.tuning.skipping,
        )
        denoiser.skipped = stage.skipped
        latents = loop.sample(
            denoiser,
            built,
            latents.to(device=other.device, dtype=other.latent_dtype),
            request.steps,
            generators=stage.generators,
            callback=callback,
            control=control,
            progress_bar=progress_bar,
            extensions=ext,
            resume=stage.pause,
        )
        if nan_check:
            nans.check_output(latents, "unet", other.dtype, request.seeds)
        images, decoded, tiled = _decode(
            other, latents, request, nan_check=nan_check, vae_fallback=vae_fallback
        )
        stopped = control is not None and control.should_stop
        scope.completed = not stopped
    found = dict.fromkeys([*manager.warnings(), *ext.warnings(), *warnings, *decoded])
    return BatchResult(
        images,
        latents,
        built.spec.name,
        built.schedule.label,
        stopped,
        list(found),
        True,
        tiled,
        built.tuning,
        frozenset(denoiser.skipped),
    )


def check_switch(model: SDModel, other: SDModel) -> None:
    """A model can take over the latents of another only when they have the same shape; A1111 lets SD1
    and SDXL (both 4 channels, 1/8 size) swap although their latent scales differ, and so does Sumi."""
    if other.latent_channels != model.latent_channels or other.vae_scale != model.vae_scale:
        raise InvalidRequestError(
            f"the {other.family} model cannot continue the {model.family} model's sampling: its latents have "
            f"{other.latent_channels} channels at 1/{other.vae_scale} size, the model's "
            f"{model.latent_channels} at 1/{model.vae_scale}"
        )


__all__ = [
    "BatchRequest",
    "BatchResult",
    "BuiltScheduler",
    "ModelSwitch",
    "check_switch",
    "generate",
    "validate",
]
