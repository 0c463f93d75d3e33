"""A1111's processing objects (`StableDiffusionProcessingTxt2Img`, `Processed`) and their pure helpers.

Extensions build these objects (through the `modules.processing` facade) and call `process_images(p)`;
the names and meanings are A1111's. The work itself is done by `services.jobs.generation.GenerationService`.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from modules.sumi.engine.accel.memory import JobPeaks
from modules.sumi.services.images.resize import resize_image
from modules.sumi.util.version import VERSION


@dataclass
class StableDiffusionProcessing:
    """Parameters of one generation job, with A1111's field names and API defaults."""

    sd_model: Any = None
    outpath_samples: str | None = None
    outpath_grids: str | None = None
    prompt: str | list[str] = ""
    prompt_for_display: str | None = None  # A1111 keeps it for scripts; nothing of Sumi's reads it
    negative_prompt: str | list[str] = ""
    styles: list[str] = field(default_factory=list)
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str | None = None
    scheduler: str | None = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    restore_faces: bool | None = None
    tiling: bool | None = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    overlay_images: list[Any] | None = None  # A1111: the originals pasted over the result outside the mask
    eta: float | None = None
    # False (A1111's default): changed embedding files are read again before the job
    do_not_reload_embeddings: bool = False
    denoising_strength: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    ddim_discretize: str | None = None  # A1111 1.6+ keeps it and reads it nowhere (setting ddim_discretize)
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    sampler_index: int | None = None
    disable_extra_networks: bool = False
    force_task_id: str | None = None  # the job's id in the queue and progress reports (A1111's, both tabs)
    comments: dict[str, Any] = field(default_factory=dict)
    script_args: list[Any] = field(default_factory=list)
    # A1111 1.6+: the refiner checkpoint (title or name; None, "" or "None": no refiner) and the completed
    # fraction of sampling at which it takes over (services/jobs/refiner.py).
    refiner_checkpoint: str | None = None
    refiner_switch_at: float | None = None
    # Filled while the job runs (A1111 names).
    all_prompts: list[str] = field(default_factory=list)
    all_negative_prompts: list[str] = field(default_factory=list)
    all_seeds: list[int] = field(default_factory=list)
    all_subseeds: list[int] = field(default_factory=list)
    iteration: int = 0
    clip_skip: int = 1
    job_timestamp: str = ""
    sd_model_name: str | None = None
    sd_model_hash: str | None = None
    sd_vae_name: str | None = None
    sd_vae_hash: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Sumi: the job's ControlNet units (modules.sumi.services.controlnet.units.ControlNetUnit), from the API's
    # `alwayson_scripts.controlnet` or the UI's ControlNet accordion.
    controlnet_units: list[Any] = field(default_factory=list)
    # Sumi: in img2img's Batch tab, the input image's place (a ControlNet batch unit's picture to pair it with)
    controlnet_batch_index: int | None = None
    # Sumi: engine extensions (modules.sumi.engine.extensions.Extension) every batch of the job runs with, by
    # name. The extra-network handlers put theirs here on activate ("lora", "hypernet"); scripts may too.
    engine_extensions: dict[str, Any] = field(default_factory=dict)
    # Sumi: the job's own tiled-VAE policy (engine.accel.tiled_vae.TilingPolicy; the Tiled VAE script sets
    # it); None: Settings > VAE decide.
    vae_tiling: Any = None
    # A1111: the tab's ScriptRunner (always-on script hooks) and the current batch's values.
    scripts: Any = None
    is_api: bool = field(default=False, init=False)  # set by the API routes: scripts run without a UI
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    extra_network_data: dict[str, Any] = field(default_factory=dict)
    sampler: Any = None  # A1111: the running batch's sampler object (sd_samplers.create_sampler)
    # A1111: the running batch's noise (engine.sampling.image_rng.ImageRNG); a script may replace it
    rng: Any = field(default=None, init=False)
    # A1111 runtime fields: where an "only masked" crop goes back (x, y, w, h), and whether the model
    # took 9-channel inpainting conditioning.
    paste_to: tuple[int, int, int, int] | None = field(default=None, init=False)
    is_using_inpainting_conditioning: bool = field(default=False, init=False)
    color_corrections: list[Any] | None = field(default=None, init=False)
    batch_index: int = field(default=0, init=False)
    is_hr_pass: bool = field(default=False, init=False)  # A1111: True while the hires pass samples
    refiner_checkpoint_info: Any = field(default=None, init=False)  # A1111: set once the job starts
    # A1111: a script may set the job's own token merging ratios (0: the settings'; jobs/token_merging.py)
    token_merging_ratio: float = field(default=0.0, init=False)
    token_merging_ratio_hr: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.extra_generation_params = dict(self.extra_generation_params or {})
        self.override_settings = dict(self.override_settings or {})
        self.styles = list(self.styles or [])
        self.comments = dict(self.comments or {})

    @property
    def script_args_value(self) -> list[Any]:
        """A1111 1.6+ keeps `script_args` here; the same list."""
        return self.script_args

    @script_args_value.setter
    def script_args_value(self, value: list[Any]) -> None:
        self.script_args = value

    def close(self) -> None:
        """A1111 frees the job's sampler and cached conditionings here."""
        self.sampler = None

    def init(self, all_prompts: list[str], all_seeds: list[int], all_subseeds: list[int]) -> None:
        """A1111: the job's own preparation once its prompts and seeds are known (img2img's images)."""

    @property
    def main_prompt(self) -> str:
        return self.all_prompts[0] if self.all_prompts else first_text(self.prompt)

    @property
    def main_negative_prompt(self) -> str:
        return self.all_negative_prompts[0] if self.all_negative_prompts else first_text(self.negative_prompt)


@dataclass
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """A1111's txt2img job with its Hires. fix fields (names and defaults as A1111 1.10).

    `hr_cfg` is Sumi's (and Forge's) "Hires CFG Scale"; None means the job's `cfg_scale`. `firstpass_image`
    (API: base64) is a finished first-pass image: the job runs only the hires pass on it (A1111's
    ✨ Upscale). The runtime fields are filled by `init` (`services.jobs.hires.prepare`)."""

    enable_hr: bool = False
    denoising_strength: float | None = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str | None = None
    hr_sampler_name: str | None = None
    hr_scheduler: str | None = None
    hr_prompt: str | list[str] = ""
    hr_negative_prompt: str | list[str] = ""
    hr_cfg: float | None = None
    firstpass_image: Any = None
    # A1111 runtime fields (filled when the job is prepared).
    hr_checkpoint_info: Any = field(default=None, init=False)
    hr_upscale_to_x: int = field(default=0, init=False)
    hr_upscale_to_y: int = field(default=0, init=False)
    truncate_x: int = field(default=0, init=False)
    truncate_y: int = field(default=0, init=False)
    applied_old_hires_behavior_to: tuple[int, int] | None = field(default=None, init=False)
    latent_scale_mode: dict[str, Any] | None = field(default=None, init=False)
    hr_c: Any = field(default=None, init=False)
    hr_uc: Any = field(default=None, init=False)
    # A1111: the per-image prompts of the hires pass (extensions such as Dynamic Prompts rewrite them).
    all_hr_prompts: list[str] = field(default_factory=list, init=False)
    all_hr_negative_prompts: list[str] = field(default_factory=list, init=False)
    hr_prompts: list[str] = field(default_factory=list, init=False)
    hr_negative_prompts: list[str] = field(default_factory=list, init=False)
    hr_extra_network_data: dict[str, Any] = field(default_factory=dict, init=False)
    # A1111 1.8+: set by the ✨ Upscale button (only the hires pass runs, on `firstpass_image`).
    txt2img_upscale: bool = field(default=False, init=False)
    # Sumi: what `init` needs from the running job (settings, upscalers, checkpoints), set by the
    # generation service.
    job_context: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.firstphase_width != 0 or self.firstphase_height != 0:  # A1111's pre-1.0 API fields
            self.hr_upscale_to_x, self.hr_upscale_to_y = self.width, self.height
            self.width, self.height = self.firstphase_width, self.firstphase_height

    def calculate_target_resolution(self, use_old_hires_fix_width_height: bool | None = None) -> None:
        """A1111: the hires size (`hr_upscale_to_x/y`) and the latent crop (`truncate_x/y`) from
        "Upscale by" or "Resize width/height to"; writes `Hires upscale` or `Hires resize`. With the
        old behaviour (setting `use_old_hires_fix_width_height`) width/height are the final size."""
        old = use_old_hires_fix_width_height
        if old is None:
            options = getattr(self.job_context, "options", None)
            old = bool(getattr(options, "use_old_hires_fix_width_height", False))
        calculate_target_resolution(self, old)

    def init(self, all_prompts: list[str], all_seeds: list[int], all_subseeds: list[int]) -> None:
        """A1111: checks the hires settings and writes their infotext keys (the generation service
        sets `job_context`; without one, only the target size is computed)."""
        if not self.enable_hr:
            return
        if self.job_context is not None:
            self.job_context.init(self)
        else:
            self.calculate_target_resolution()


@dataclass
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """A1111's img2img job, with its field names and defaults.

    `mask` is the inpainting mask as given (white = redraw); as in A1111 it moves to `image_mask` when
    the object is made, and `mask`/`nmask` become the latent masks once the job is prepared. `mask_blur`
    sets both `mask_blur_x` and `mask_blur_y` (reading it gives the blur when they are equal, else None).
    `initial_noise_multiplier` None means the setting of that name. The job's preparation (`init`, run
    by the generation service) fills the runtime fields: `image_mask` (blurred, resized), `mask_for_overlay`,
    `overlay_images`, `paste_to`, `init_latent`, `image_conditioning`, `mask`, `nmask`."""

    init_images: list[Any] = field(default_factory=list)
    resize_mode: int = 0
    denoising_strength: float | None = 0.75
    image_cfg_scale: float | None = None
    mask: Any = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int | None = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    latent_mask: Any = None
    # Filled while the job is prepared (A1111 names).
    image_mask: Any = field(default=None, init=False)
    nmask: Any = field(default=None, init=False)
    image_conditioning: Any = field(default=None, init=False)
    init_img_hash: str | None = field(default=None, init=False)
    mask_for_overlay: Any = field(default=None, init=False)
    init_latent: Any = field(default=None, init=False)
    # Sumi: what `init` needs from the running job (the engine model and the settings), set by the
    # generation service before it calls `init`.
    job_context: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.init_images = list(self.init_images or [])
        self.image_mask, self.mask = self.mask, None

    def init(self, all_prompts: list[str], all_seeds: list[int], all_subseeds: list[int]) -> None:
        """A1111: prepare the init images, the masks and the overlays, and encode the images with the
        VAE (`init_latent`). The generation service calls it once per job after the scripts' `process`;
        without a running job (`job_context` unset) only the pixel work is done."""
        if self.job_context is not None:
            self.job_context.init(self, all_seeds)


def _get_mask_blur(self: StableDiffusionProcessingImg2Img) -> int | None:
    return self.mask_blur_x if self.mask_blur_x == self.mask_blur_y else None


def _set_mask_blur(self: StableDiffusionProcessingImg2Img, value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        self.mask_blur_x = self.mask_blur_y = value


# A1111's `mask_blur` is a property over mask_blur_x/y; the dataclass field keeps its None default (the
# API model reads it) and its __init__ assignment goes through the setter.
StableDiffusionProcessingImg2Img.mask_blur = property(_get_mask_blur, _set_mask_blur)  # type: ignore[assignment]


@dataclass(frozen=True)
class JobPerformance:
    """How long a job took and the most memory it used (the UI's "Time taken" line)."""

    seconds: float
    peaks: JobPeaks


class Processed:
    """What a job produced: images with their infotexts and the values actually used.

    A1111's constructor: `Processed(p, images_list, seed=-1, info="", subseed=None, all_prompts=None,
    all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image=0,
    infotexts=None, comments="")`, as a script's `run` calls it: without `infotexts`, every image gets
    `info` (A1111's `[info] * len(images_list)`); `prompt`/`negative_prompt` are the first prompt
    when `p` holds a list. Sumi adds the keyword `warnings` (default: the job's); the other fields of
    A1111's Processed are read from `p`."""

    def __init__(
        self,
        p: StableDiffusionProcessing,
        images_list: list[Any],
        seed: Any = -1,
        info: str = "",
        subseed: Any = None,
        all_prompts: list[str] | None = None,
        all_negative_prompts: list[str] | None = None,
        all_seeds: list[int] | None = None,
        all_subseeds: list[int] | None = None,
        index_of_first_image: int = 0,
        infotexts: list[str] | None = None,
        comments: str = "",
        *,
        warnings: list[str] | None = None,
    ) -> None:
        self.p = p
        self.images = images_list
        self.prompt = first_text(p.prompt)
        self.negative_prompt = first_text(p.negative_prompt)
        self.version = VERSION
        self.seed = _first_int(seed, -1)
        self.subseed = _first_int(subseed, -1)
        self.info = info
        self.comments = comments or "".join(f"{c}\n" for c in p.comments)
        self.all_prompts = list(all_prompts or p.all_prompts or [first_text(p.prompt)])
        self.all_negative_prompts = list(
            all_negative_prompts or p.all_negative_prompts or [first_text(p.negative_prompt)]
        )
        self.all_seeds = list(all_seeds or p.all_seeds or [self.seed])
        self.all_subseeds = list(all_subseeds or p.all_subseeds or [self.subseed])
        self.index_of_first_image = index_of_first_image
        self.infotexts = list(infotexts) if infotexts else [info] * len(images_list)
        self.warnings = list(p.warnings if warnings is None else warnings)
        self.performance: JobPerformance | None = None  # set by the job runner when the job ends

    def __getattr__(self, name: str) -> Any:
        # A1111's Processed copies most of p's fields; read them from p instead.
        if name.startswith("_") or name == "p":
            raise AttributeError(name)
        return getattr(self.p, name)

    def infotext(self, p: StableDiffusionProcessing, index: int) -> str:
        """A1111: the infotext of image `index` of this result."""
        return self.infotexts[index] if 0 <= index < len(self.infotexts) else self.info

    def js(self) -> str:
        """The `info` JSON string of A1111's API response."""
        p = self.p
        data = {
            "prompt": self.all_prompts[0] if self.all_prompts else "",
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0] if self.all_negative_prompts else "",
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.all_subseeds[0] if self.all_subseeds else -1,
            "all_subseeds": self.all_subseeds,
            "subseed_strength": p.subseed_strength,
            "width": p.width,
            "height": p.height,
            "sampler_name": p.sampler_name,
            "scheduler": p.scheduler,
            "cfg_scale": p.cfg_scale,
            "image_cfg_scale": getattr(p, "image_cfg_scale", None),
            "steps": p.steps,
            "batch_size": p.batch_size,
            "n_iter": p.n_iter,
            "restore_faces": p.restore_faces,
            "face_restoration_model": None,
            "sd_model_name": p.sd_model_name,
            "sd_model_hash": p.sd_model_hash,
            "sd_vae_name": p.sd_vae_name,
            "sd_vae_hash": p.sd_vae_hash,
            "seed_resize_from_w": p.seed_resize_from_w,
            "seed_resize_from_h": p.seed_resize_from_h,
            "denoising_strength": p.denoising_strength,
            # A1111: values that are functions of the image (the hires prompts) show as null here
            "extra_generation_params": {
                k: None if callable(v) else v for k, v in p.extra_generation_params.items()
            },
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "styles": p.styles,
            "job_timestamp": p.job_timestamp,
            "clip_skip": p.clip_skip,
            "is_using_inpainting_conditioning": p.is_using_inpainting_conditioning,
            "version": VERSION,
            "warnings": self.warnings,
        }
        return json.dumps(data, default=str)


def _first_int(value: Any, default: int) -> int:
    """A1111: a seed given as a list means its first entry; None means `default`."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def first_text(value: str | list[str]) -> str:
    """The first prompt of a prompt or prompt list ("" for neither)."""
    return value[0] if isinstance(value, list) and value else (value if isinstance(value, str) else "")


# -- A1111 helpers extensions call -------------------------------------------------------------------

opt_C = 4  # latent channels  # noqa: N816 (A1111's name)
opt_f = 8  # latent downscale factor


def get_fixed_seed(seed: int | str | None) -> int:
    """A1111: -1, empty or unreadable means a random seed; anything else is the seed itself."""
    try:
        seed = int(seed) if seed not in ("", None) else -1
    except (TypeError, ValueError):
        seed = -1
    return random.randrange(4294967294) if seed == -1 else seed


def fix_seed(p: StableDiffusionProcessing) -> None:
    """Draw the random seeds of `p` now, so scripts see the seeds the job will use (A1111)."""
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def uncrop(image: Any, dest_size: tuple[int, int], paste_loc: tuple[int, int, int, int]) -> Any:
    """A1111: `image` (the result of an "only masked" crop) scaled back into its box of a transparent
    `dest_size` picture."""
    from PIL import Image

    x, y, w, h = paste_loc
    base = Image.new("RGBA", dest_size)
    base.paste(resize_image(1, image, w, h), (x, y))
    return base


def apply_overlay(image: Any, paste_loc: Any, overlay: Any, overlays: list[Any] | None = None) -> Any:
    """A1111's overlay of the original outside the mask (`overlay`: the original with the masked part
    transparent), after pasting an "only masked" result back into place (`paste_loc`).

    Returns `(image, image before the overlay)` as A1111 1.8+; the older form
    `apply_overlay(image, paste_loc, index, overlays)` returns the image alone."""
    if overlays is not None or isinstance(overlay, int):
        index = overlay
        chosen = overlays[index] if overlays is not None and index < len(overlays) else None
        return apply_overlay(image, paste_loc, chosen)[0]
    if overlay is None:
        return image, image.copy()
    if paste_loc is not None:
        image = uncrop(image, (overlay.width, overlay.height), paste_loc)
    original = image.copy()
    image = image.convert("RGBA")
    image.alpha_composite(overlay)
    return image.convert("RGB"), original


# -- Hires. fix size (A1111's txt2img `calculate_target_resolution`) ---------------------------------


def old_hires_fix_first_pass_dimensions(width: int, height: int) -> tuple[int, int]:
    """A1111's pre-1.0 first pass size: about 512x512 pixels, each side rounded up to a multiple of 64."""
    scale = math.sqrt(512 * 512 / (width * height))
    return math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64


def target_size(
    width: int, height: int, scale: float, resize_x: int, resize_y: int
) -> tuple[int, int, int, int]:
    """A1111's `calculate_target_resolution`: (upscale_to_x, upscale_to_y, truncate_x, truncate_y)."""
    if resize_x == 0 and resize_y == 0:
        return int(width * scale), int(height * scale), 0, 0
    if resize_y == 0:
        return resize_x, resize_x * height // width, 0, 0
    if resize_x == 0:
        return resize_y * width // height, resize_y, 0, 0
    if width / height < resize_x / resize_y:
        x, y = resize_x, resize_x * height // width
    else:
        x, y = resize_y * width // height, resize_y
    return x, y, (x - resize_x) // opt_f, (y - resize_y) // opt_f


def calculate_target_resolution(p: Any, old: bool = False) -> None:
    """Fill `hr_upscale_to_x/y` and `truncate_x/y`, and write `Hires upscale` or `Hires resize`. `old`:
    A1111's `use_old_hires_fix_width_height` (width/height are the final size; the first pass is
    about 512x512)."""
    if old and p.applied_old_hires_behavior_to != (p.width, p.height):
        p.hr_resize_x, p.hr_resize_y = p.width, p.height
        p.hr_upscale_to_x, p.hr_upscale_to_y = p.width, p.height
        p.width, p.height = old_hires_fix_first_pass_dimensions(p.width, p.height)
        p.applied_old_hires_behavior_to = (p.width, p.height)
    x, y, tx, ty = target_size(p.width, p.height, p.hr_scale, p.hr_resize_x, p.hr_resize_y)
    if p.hr_resize_x == 0 and p.hr_resize_y == 0:
        p.extra_generation_params["Hires upscale"] = p.hr_scale
    else:
        p.extra_generation_params["Hires resize"] = f"{p.hr_resize_x}x{p.hr_resize_y}"
    p.hr_upscale_to_x, p.hr_upscale_to_y, p.truncate_x, p.truncate_y = x, y, tx, ty


def create_binary_mask(image: Any, round: bool = True) -> Any:  # noqa: A002 (A1111's name)
    """A1111: the alpha channel as a black/white mask when the image has one, else its greyscale."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = image.split()[-1].convert("L")
        return alpha.point(lambda x: 255 if x > 128 else 0) if round else alpha
    return image.convert("L")
