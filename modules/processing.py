"""A1111's processing objects (`StableDiffusionProcessingTxt2Img`, `Processed`, `process_images`).

Extensions build these objects and call `process_images(p)`; the names and meanings are A1111's.
The work itself is done by `modules.generation.GenerationService`; this module only holds the data
and finds the running App through `modules.shared` when an extension calls `process_images`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


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
    # Sumi: the job's ControlNet units (modules.controlnet_units.ControlNetUnit), from the API's
    # `alwayson_scripts.controlnet` or the UI's ControlNet accordion.
    controlnet_units: list[Any] = field(default_factory=list)
    # A1111: the tab's ScriptRunner (always-on script hooks) and the current batch's values.
    scripts: Any = None
    prompts: list[str] = field(default_factory=list)
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    extra_network_data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.extra_generation_params = dict(self.extra_generation_params or {})
        self.override_settings = dict(self.override_settings or {})
        self.styles = list(self.styles or [])
        self.comments = dict(self.comments or {})

    @property
    def main_prompt(self) -> str:
        return self.all_prompts[0] if self.all_prompts else _first(self.prompt)

    @property
    def main_negative_prompt(self) -> str:
        return self.all_negative_prompts[0] if self.all_negative_prompts else _first(self.negative_prompt)


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
            "version": _version(),
            "warnings": self.warnings,
        }
        return json.dumps(data, default=str)


def _first(value: str | list[str]) -> str:
    return value[0] if isinstance(value, list) and value else (value if isinstance(value, str) else "")


def _version() -> str:
    from modules.version import VERSION

    return VERSION


def process_images(p: StableDiffusionProcessing) -> Processed:
    """Run a job on the running app (A1111 entry point for scripts and extensions): on the GPU worker,
    inline when called from a job (a script's `run`), else queued (an extension's own tab)."""
    from modules import shared

    app = shared.app()
    return app.queue.call("process_images", lambda: app.generation.process(p))
