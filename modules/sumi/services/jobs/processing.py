"""A1111's processing objects (`StableDiffusionProcessingTxt2Img`, `Processed`) and their pure helpers.

Extensions build these objects (through the `modules.processing` facade) and call `process_images(p)`;
the names and meanings are A1111's. The work itself is done by `services.jobs.generation.GenerationService`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from modules.sumi.util.version import VERSION


@dataclass
class StableDiffusionProcessing:
    """Parameters of one generation job, with A1111's field names and API defaults."""

    sd_model: Any = None
    outpath_samples: str | None = None
    outpath_grids: str | None = None
    prompt: str | list[str] = ""
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
    eta: float | None = None
    denoising_strength: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    sampler_index: int | None = None
    disable_extra_networks: bool = False
    comments: dict[str, Any] = field(default_factory=dict)
    script_args: list[Any] = field(default_factory=list)
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
    # Sumi: engine extensions (modules.sumi.engine.extensions.Extension) every batch of the job runs with, by
    # name. The extra-network handlers put theirs here on activate ("lora", "hypernet"); scripts may too.
    engine_extensions: dict[str, Any] = field(default_factory=dict)
    # A1111: the tab's ScriptRunner (always-on script hooks) and the current batch's values.
    scripts: Any = None
    is_api: bool = field(default=False, init=False)  # set by the API routes: scripts run without a UI
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    extra_network_data: dict[str, Any] = field(default_factory=dict)
    sampler: Any = None  # A1111: the sampler object of the running job; Sumi's loop has none to show

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
        """A1111 frees the job's sampler and cached conditionings here; Sumi keeps none on `p`."""

    @property
    def main_prompt(self) -> str:
        return self.all_prompts[0] if self.all_prompts else first_text(self.prompt)

    @property
    def main_negative_prompt(self) -> str:
        return self.all_negative_prompts[0] if self.all_negative_prompts else first_text(self.negative_prompt)


@dataclass
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_upscaler: str | None = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    # A1111: the per-image prompts of the hires pass (extensions such as Dynamic Prompts rewrite them).
    all_hr_prompts: list[str] = field(default_factory=list)
    all_hr_negative_prompts: list[str] = field(default_factory=list)


@dataclass
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """A1111's img2img job, with its field names and defaults. Extensions may build one and read it,
    but Sumi has no img2img yet: `process_images` refuses it with a clear error."""

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
    image_mask: Any = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_mask is None:
            self.image_mask = self.mask


@dataclass
class Processed:
    """What a job produced: images with their infotexts and the values actually used."""

    p: StableDiffusionProcessing
    images: list[Any]
    infotexts: list[str]
    seed: int
    all_seeds: list[int]
    all_subseeds: list[int]
    index_of_first_image: int = 0
    info: str = ""
    comments: str = ""
    warnings: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        # A1111's Processed copies most of p's fields; read them from p instead.
        if name.startswith("_") or name == "p":
            raise AttributeError(name)
        return getattr(self.p, name)

    def js(self) -> str:
        """The `info` JSON string of A1111's API response."""
        p = self.p
        data = {
            "prompt": p.main_prompt,
            "all_prompts": p.all_prompts,
            "negative_prompt": p.main_negative_prompt,
            "all_negative_prompts": p.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": p.all_subseeds[0] if p.all_subseeds else -1,
            "all_subseeds": self.all_subseeds,
            "subseed_strength": p.subseed_strength,
            "width": p.width,
            "height": p.height,
            "sampler_name": p.sampler_name,
            "scheduler": p.scheduler,
            "cfg_scale": p.cfg_scale,
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
            "extra_generation_params": p.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "styles": p.styles,
            "job_timestamp": p.job_timestamp,
            "clip_skip": p.clip_skip,
            "is_using_inpainting_conditioning": False,
            "version": VERSION,
            "warnings": self.warnings,
        }
        return json.dumps(data, default=str)


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


def create_binary_mask(image: Any, round: bool = True) -> Any:  # noqa: A002 (A1111's name)
    """A1111: the alpha channel as a black/white mask when the image has one, else its greyscale."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        alpha = image.split()[-1].convert("L")
        return alpha.point(lambda x: 255 if x > 128 else 0) if round else alpha
    return image.convert("L")


def setup_color_correction(image: Any) -> Any:
    """A1111: the image in LAB colour space, the target img2img's colour correction matches."""
    import cv2
    import numpy as np

    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB)
