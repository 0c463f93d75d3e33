"""Runs A1111-shaped txt2img and img2img jobs: settings and seeds in, images, infotexts and files out.

img2img's own work (masks, crops, init latents, the overlay after decoding) is in `jobs/img2img.py`."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from modules.sumi.engine import generate as engine
from modules.sumi.engine import previews
from modules.sumi.engine import vae as vae_ops
from modules.sumi.engine.accel.tiled_vae import Tiled
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import Extension
from modules.sumi.engine.networks.embeddings import partition
from modules.sumi.engine.placement import precision_infotext
from modules.sumi.engine.sampling.image_rng import ImageRNG
from modules.sumi.engine.sampling.loop import StepInfo
from modules.sumi.engine.sampling.noise import noise_device, source_of_setting
from modules.sumi.engine.sampling.samplers import find_sampler
from modules.sumi.services.controlnet.batch import control_batch
from modules.sumi.services.controlnet.service import ControlNetService, PreparedControl, Target
from modules.sumi.services.controlnet.units import ControlNetUnit, decode_image
from modules.sumi.services.faces.registry import FaceRestorers
from modules.sumi.services.images import saving as image_files
from modules.sumi.services.images.namegen import image_file_decoration
from modules.sumi.services.jobs import (
    a1111_sampler,
    face_restore,
    hires,
    ignored_fields,
    img2img,
    refiner,
    sampler_params,
    tiling,
    token_merging,
    vae_tiling,
)
from modules.sumi.services.jobs.controlnet_batch import run_control_batch
from modules.sumi.services.jobs.hooks import JobContext, a1111_cfg, postprocess_batch, select_batch
from modules.sumi.services.jobs.infotext import build_infotext
from modules.sumi.services.jobs.live_preview import BatchPreview, PreviewWorker, interrupt_decoder
from modules.sumi.services.jobs.processing import (
    Processed,
    StableDiffusionProcessing,
    StableDiffusionProcessingImg2Img,
)
from modules.sumi.services.jobs.state import JobState
from modules.sumi.services.jobs.total_progress import TotalProgress
from modules.sumi.services.models.manager import LoadedModel, ModelManager
from modules.sumi.services.networks.added_network import add_network_to_prompt
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from modules.sumi.services.networks.registry import ExtraNetworkRegistry, parse_prompts
from modules.sumi.services.scripts.callbacks import CallbackRegistry, ImageSaveParams, grid_layout
from modules.sumi.services.scripts.runner import PostSampleArgs
from modules.sumi.services.settings import limits as hard_limits
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.settings.service import SettingsService
from modules.sumi.services.settings.styles import StyleDatabase
from modules.sumi.services.upscalers.registry import UpscalerRegistry
from modules.sumi.util.atomic import write_atomic
from modules.sumi.util.version import VERSION

MAX_SEED = 4294967294
log = logging.getLogger(__name__)


class GenerationService:
    def __init__(
        self,
        models: ModelManager,
        options: Options,
        paths: DataPaths,
        state: JobState,
        styles: StyleDatabase | None = None,
        extra_networks: ExtraNetworkRegistry | None = None,
        embeddings: EmbeddingDatabase | None = None,
        controlnet: ControlNetService | None = None,
        callbacks: CallbackRegistry | None = None,
        model_view: Callable[[LoadedModel], Any] | None = None,
        settings: SettingsService | None = None,
        *,
        nan_check: bool = True,
        upscalers: UpscalerRegistry | None = None,
        faces: FaceRestorers | None = None,
        console_progress: bool = True,
    ) -> None:
        self.console_progress = console_progress  # False: --disable-console-progressbars
        self.total_progress = TotalProgress(False)
        self.models = models
        self.options = options
        self.paths = paths
        self.state = state
        self.styles = styles
        self.extra_networks = extra_networks or ExtraNetworkRegistry()
        self.embeddings = embeddings
        self.controlnet = controlnet
        self.callbacks = callbacks
        self.model_view = model_view or (lambda loaded: loaded.sd)  # what `p.sd_model` shows scripts
        self.settings = settings  # checks `override_settings` as POST /options checks settings
        self.nan_check = nan_check  # off with --disable-nan-check
        self.upscalers = upscalers or UpscalerRegistry(lambda: state.interrupted)  # hires, img2img
        self.faces = faces  # GFPGAN / CodeFormer for restore_faces
        self.preview_worker = PreviewWorker()
        self.preview_problems: list[str] = []  # missing/unusable preview files, each said once
        self.preview_networks = previews.PreviewNetworks(
            (paths.models_dir if paths is not None else Path("models")) / "VAE-approx",
            allow_unsafe_pickle=bool(getattr(models, "allow_unsafe_pickle", False)),
            on_problem=self._preview_problem,
            # A fresh install has no preview files: its default method falls back to Approx cheap with
            # one console line; a method the user picked without its file also warns in the job.
            quiet_when_missing=(options.data_labels["show_progress_type"].default,),
        )

    def close(self) -> None:
        """Stop the live-preview thread (the App shuts down)."""
        self.preview_worker.close()

    def _preview_problem(self, text: str) -> None:
        log.warning(text)
        self.preview_problems.append(text)

    def process(self, p: StableDiffusionProcessing) -> Processed:
        """Run every batch of `p` on the active model (call from the job worker); with ControlNet units
        in batch input mode, once per picture (`jobs.controlnet_batch`)."""
        batch = control_batch(p.controlnet_units, self.paths.confine) if self.controlnet is not None else None
        if batch is None:
            return self._process_one(p)
        output_dir = None
        if batch.output_dir.strip():
            try:
                output_dir = self.paths.confine(batch.output_dir.strip())
            except ValueError as exc:
                raise InvalidRequestError(f"ControlNet batch output folder: {exc}") from exc
        return run_control_batch(
            p,
            batch,
            self._process_one,
            interrupted=lambda: self.state.interrupted,
            output_dir=output_dir,
            samples_format=str(self.options.samples_format),
            settings=image_files.SaveSettings.from_options(self.options),
        )

    def _process_one(self, p: StableDiffusionProcessing) -> Processed:
        """One job of `p` (call from the job worker).

        Always-on scripts (`p.scripts`) get A1111's hooks: before_process, process, then per batch
        before_process_batch, after_extra_networks_activate, process_batch, postprocess_batch(_list),
        postprocess_image, and postprocess at the end."""
        self._warn(p, ignored_fields.warnings_for(p))  # fields Sumi accepts but does not honour
        if p.scripts is not None:
            p.scripts.before_process(p)
        with self._job_settings(p):
            self.validate(p)
            loaded = self.models.get()
            self._prepare(p, loaded)
            self._warn(p, face_restore.prepare(p, self.faces, self.options))
            with tiling.job_tiling(p, loaded.sd, self.options) as tiles:  # circular padding, undone after
                if p.scripts is not None:
                    p.scripts.process(p)
                p.init(p.all_prompts, p.all_seeds, p.all_subseeds)  # A1111: img2img prepares its images here
                processed = self._run(p, loaded, tiles)
        if p.scripts is not None:
            p.scripts.postprocess(p, processed)
        return processed

    # -- checks and preparation -----------------------------------------------------------------
    def validate(self, p: StableDiffusionProcessing) -> None:
        """InvalidRequestError for a value out of range, or `override_settings` that POST /options
        would refuse. The limits are the global settings (a job's overrides cannot lift them)."""
        self._checked_overrides(p)
        glob = self.options.global_data()

        def limit(key: str) -> Any:
            return glob.get(key, self.options.get_default(key))

        limits = (
            ("width", p.width, 64, limit("max_image_size")),
            ("height", p.height, 64, limit("max_image_size")),
            ("steps", p.steps, 1, limit("max_steps")),
            ("batch_size", p.batch_size, 1, limit("max_batch_size")),
            ("n_iter", p.n_iter, 1, limit("max_batch_count")),
        )
        for name, value, low, high in limits:
            if not isinstance(value, int) or not low <= value <= high:
                raise InvalidRequestError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        self._round_sizes_down(p)
        if not 0 <= p.cfg_scale <= hard_limits.CFG_SCALE_MAX:
            raise InvalidRequestError(
                f"cfg_scale must be from 0 to {hard_limits.CFG_SCALE_MAX:g}, got {p.cfg_scale}"
            )
        self._validate_seed_resize(p)
        self._validate_prompt_lengths(p)
        find_sampler(p.sampler_name or "Euler", p.scheduler)
        refiner.prepare(p, self.models)
        if img2img.is_img2img(p):
            img2img.validate(p, int(limit("max_image_size")))
        old_hires = bool(self.options.use_old_hires_fix_width_height)
        hires.validate(
            p, self.upscalers.find, int(limit("max_image_size")), int(limit("max_steps")), old_hires
        )

    def _validate_seed_resize(self, p: StableDiffusionProcessing) -> None:
        """Resize-seed-from draws noise at that size: it is bound by `max_image_size` like the image."""
        high = int(self.options.max_image_size)
        for name in ("seed_resize_from_w", "seed_resize_from_h"):
            value = getattr(p, name)
            if not isinstance(value, int) or value > high:
                raise InvalidRequestError(
                    f"{name} must be an integer of at most {high} (the max_image_size setting), or 0/-1 "
                    f"for none, got {value!r}"
                )

    def _validate_prompt_lengths(self, p: StableDiffusionProcessing) -> None:
        """Every prompt text at most `max_prompt_length` characters (a huge prompt holds the queue)."""
        high = int(self.options.max_prompt_length)
        for name in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
            value = getattr(p, name, "")
            texts = value if isinstance(value, (list, tuple)) else [value]
            longest = max((len(t) for t in texts if isinstance(t, str)), default=0)
            if longest > high:
                raise InvalidRequestError(
                    f"{name} is {longest} characters long; the limit is {high} (the max_prompt_length setting)"
                )

    def _prepare(self, p: StableDiffusionProcessing, loaded: LoadedModel) -> None:
        spec, schedule = find_sampler(p.sampler_name or "Euler", p.scheduler)
        p.sampler_name, p.scheduler = spec.name, schedule.label
        total = p.batch_size * p.n_iter
        p.all_prompts = _per_image(p.prompt, total)
        p.all_negative_prompts = _per_image(p.negative_prompt, total)
        self._apply_styles(p)
        hires.setup_prompts(p, self.styles)
        use_variation = p.seed_enable_extras and p.subseed_strength > 0
        p.all_seeds = _seed_list(p.seed, total, 0 if use_variation else 1)
        p.all_subseeds = _seed_list(p.subseed, total, 1 if use_variation else 0)
        p.seed, p.subseed = p.all_seeds[0], p.all_subseeds[0]
        p.clip_skip = int(self.options.CLIP_stop_at_last_layers)
        sampler_params.fill_fields(p, self.options)
        p.sd_model = self.model_view(loaded)
        p.sd_model_name = loaded.checkpoint.name_for_extra
        p.sd_model_hash = loaded.checkpoint.hash
        p.sd_vae_name = loaded.vae_name
        p.sd_vae_hash = loaded.vae_hash
        p.job_timestamp = datetime.now().strftime("%Y%m%d%H%M%S")
        if img2img.is_img2img(p):
            resizer = self.upscalers.resizer(self.options.upscaler_for_img2img)
            p.job_context = img2img.Img2ImgContext(loaded.sd, self.options, self._save_init_image, resizer)
        elif hires.is_enabled(p):
            p.job_context = hires.HiresContext(self.options, self.models)

    def _apply_styles(self, p: StableDiffusionProcessing) -> None:
        """A1111: styles are merged into every prompt first; the infotext holds the expanded text."""
        if not p.styles or self.styles is None:
            return
        for name in self.styles.unknown(p.styles):  # A1111 ignores them silently; Sumi says so
            log.warning("Style not found: %r (ignored)", name)
            p.warnings.append(f"Style not found: {name!r} (ignored)")
        p.all_prompts = [self.styles.apply_styles_to_prompt(x, p.styles) for x in p.all_prompts]
        p.all_negative_prompts = [
            self.styles.apply_negative_styles_to_prompt(x, p.styles) for x in p.all_negative_prompts
        ]

    def _checked_overrides(self, p: StableDiffusionProcessing) -> dict[str, Any]:
        """`p.override_settings` checked as settings are (the checkpoint as its title); unknown keys
        are left out with a warning."""
        if self.settings is None:
            return {k: v for k, v in p.override_settings.items() if k in self.options.data_labels}
        overrides, warnings = self.settings.checked_overrides(p.override_settings, is_api=p.is_api)
        self._warn(p, warnings)
        return overrides

    @contextlib.contextmanager
    def _job_settings(self, p: StableDiffusionProcessing) -> Iterator[None]:
        """The job's private view of the settings: the values when it started with its overrides on
        top; the globals are never written back (A1111's `override_settings_restore_afterwards` without
        the race). With `override_settings_restore_afterwards` false the overrides stay set afterwards
        (as in A1111, in memory only), except where someone changed that setting meanwhile."""
        overrides = self._checked_overrides(p)
        outer, glob = self.options.data, self.options.global_data()
        started = {key: glob.get(key) for key in overrides}
        with self.options.job_view(overrides):
            yield
        if not p.override_settings_restore_afterwards:
            for key, value in overrides.items():
                outer[key] = value  # the rest of this job (a script's next process_images) too
                if glob.get(key) == started[key]:
                    glob[key] = value

    # -- running ------------------------------------------------------------------------------------
    def _run(
        self, p: StableDiffusionProcessing, loaded: LoadedModel, tiles: tiling.JobTiling | None = None
    ) -> Processed:
        try:
            return self._run_batches(p, loaded, tiles)
        finally:
            self._warn(p, self.extra_networks.deactivate(p))

    def _run_batches(
        self, p: StableDiffusionProcessing, loaded: LoadedModel, tiles: tiling.JobTiling | None = None
    ) -> Processed:
        self.state.begin(job_kind(p), hires.job_count(p))
        self.total_progress = TotalProgress(self.console_progress and bool(self.options.multiple_tqdm))
        try:
            return self._run_iterations(p, loaded, tiles)
        finally:
            self.total_progress.close()

    def _run_iterations(
        self, p: StableDiffusionProcessing, loaded: LoadedModel, tiles: tiling.JobTiling | None
    ) -> Processed:
        images, infotexts = [], []
        hook = self._embedding_hook(loaded, reload=not p.do_not_reload_embeddings)
        job = JobContext(hook, self._prepare_control(p, loaded), tiles=tiles)
        if tiles is not None:
            tiles.include(*(unit.model for unit in job.control.units))
        for n in range(p.n_iter):
            if self.state.interrupted:
                break
            p.iteration = n
            composited: dict[int, img2img.Composited] = {}
            batch_images, schedule = self._batch(p, loaded, n, job, composited)
            if job.embeddings is not None and job.embeddings.ti_hashes():
                p.extra_generation_params["TI hashes"] = job.embeddings.ti_hashes()
            for i, image in enumerate(batch_images):
                index = min(n * p.batch_size + i, len(p.all_seeds) - 1)
                infotext = self.infotext(p, loaded, index, schedule)
                if index == 0:
                    self._write_params_txt(p, infotext)
                extra = composited.get(i)
                before = extra.before_color_correction if extra is not None else None
                if before is not None and self.options.save_images_before_color_correction:
                    self._save(p, before, index, infotext, "-before-color-correction")
                self._save(p, image, index, infotext)
                images.append(image)
                infotexts.append(infotext)
                for mask_image in self._mask_outputs(p, image, extra, index, infotext):
                    images.append(mask_image)
                    infotexts.append(infotext)
            self.state.nextjob()
        first = 0
        grid = self._grid(p, images)
        if grid is not None:
            self._save_grid(p, grid, infotexts[0])
            if self.options.return_grid:
                images.insert(0, grid)
                infotexts.insert(0, infotexts[0])
                first = 1
        self._save_detected_maps(p, job.control.maps_to_save)
        images.extend(job.control.detected_maps)
        infotexts.extend("" for _ in job.control.detected_maps)
        return Processed(
            p,
            images,
            p.all_seeds[0],
            infotexts[first] if infotexts else "",
            p.all_subseeds[0],
            all_seeds=p.all_seeds,
            all_subseeds=p.all_subseeds,
            index_of_first_image=first,
            infotexts=infotexts,
            warnings=list(p.warnings),
        )

    def _mask_outputs(
        self, p: StableDiffusionProcessing, image, extra: img2img.Composited | None, index: int, infotext: str
    ) -> list[Any]:
        """A1111's inpainting extras after each image: the greyscale mask (opts `save_mask`,
        `return_mask`) and the masked composite (`save_mask_composite`, `return_mask_composite`), saved
        with the suffixes `-mask` and `-mask-composite` and returned after the image."""
        if extra is None or extra.mask_for_overlay is None:
            return []
        o = self.options
        returned = []
        if o.return_mask or o.save_mask:
            mask = extra.mask_for_overlay.convert("RGB")
            if o.save_mask:
                self._save(p, mask, index, infotext, "-mask")
            if o.return_mask:
                returned.append(mask)
        if o.return_mask_composite or o.save_mask_composite:
            masked = img2img.mask_composite(extra.mask_for_overlay, extra.denoised, image.size)
            if o.save_mask_composite:
                self._save(p, masked, index, infotext, "-mask-composite")
            if o.return_mask_composite:
                returned.append(masked)
        return returned

    def _prepare_control(self, p: StableDiffusionProcessing, loaded: LoadedModel) -> PreparedControl:
        """Preprocess and load every enabled ControlNet unit before the first step (fail early)."""
        if self.controlnet is None or not any(u.enabled for u in p.controlnet_units):
            return PreparedControl()
        units = p.controlnet_units
        if img2img.is_img2img(p) and p.init_images:
            units = [_img2img_unit(p, u) if u.enabled else u for u in units]
        units = hires.first_pass_units(p, units)
        target = Target(p.width, p.height, p.batch_size, p.seed + max(p.subseed, 0), image_seed=p.seed)
        control = self.controlnet.prepare(units, loaded.sd, target)
        p.extra_generation_params.update(control.infotext)
        return control

    def _batch(
        self,
        p: StableDiffusionProcessing,
        loaded: LoadedModel,
        n: int,
        job: JobContext,
        composited: dict[int, img2img.Composited] | None = None,
    ) -> tuple[list[Any], str]:
        """One batch with the scripts' batch hooks around it; returns its images and schedule label
        (img2img's composite of each image leaves its masks in `composited`)."""
        select_batch(p, n)
        scale = loaded.sd.vae_scale
        batch_rng = p.rng = self.batch_rng(p, loaded, (p.height // scale, p.width // scale))
        batch = {"batch_number": n, "prompts": p.prompts, "seeds": p.seeds, "subseeds": p.subseeds}
        if p.scripts is not None:
            p.scripts.before_process_batch(p, **batch)
        prompts = self._activate_networks(p, p.prompts)
        self._use_bundled_embeddings(p, loaded, job)
        if p.scripts is not None:
            p.scripts.after_extra_networks_activate(p, **batch, extra_network_data=p.extra_network_data)
            p.scripts.process_batch(p, **batch)
        request = self._request(p, a1111_sampler.prompts_for_batch(prompts), job)
        if p.rng is not batch_rng or not batch_rng.is_first:  # a script replaced p.rng or drew from it
            request.noise_rng = p.rng
        if p.scripts is not None and not hires.skips_first_pass(p):  # A1111: x is the init latents (txt2img:
            # None, the engine makes the noise); ✨ Upscale (firstpass_image) has no first pass
            init = getattr(p, "init_latent", None) if img2img.is_img2img(p) else None
            p.scripts.process_before_every_sampling(p, x=init, noise=None, c=None, uc=None)
        with contextlib.ExitStack() as refined:  # the refiner, if it runs, until the batch is decoded
            if hires.is_enabled(p):  # the first pass, then the hires pass (services/jobs/hires.py)
                result = hires.HiresFix(self, p, loaded, job).sample(request)
            else:
                switch = refiner.model_switch(p, self.models, self.options, loaded, refined)
                result = self._generate(p, loaded, request, job, switch)
            self._warn(p, result.warnings)
            vae_tiling.record(p, result.vae_tiled)
            images = result.images
            if p.scripts is not None:  # A1111: scripts see (and may replace) the sampled latents
                args = PostSampleArgs(result.latents)
                p.scripts.post_sample(p, args)
                if args.samples is not result.latents:
                    decoder = self.models.active if result.switched and not hires.is_enabled(p) else None
                    tiled: list[Tiled] = []
                    pixels = vae_ops.decode(
                        (decoder or loaded).sd, args.samples, tiling=request.vae_tiling, tiled=tiled
                    )
                    vae_tiling.record(p, tiled)
                    images = vae_ops.to_pil(pixels)
        if job.control.blends:  # sd-webui-controlnet's inpaint_only blend, before A1111's overlay
            images, warnings = job.control.post_process(images)
            self._warn(p, warnings)
        restore = face_restore.per_image(
            p,
            self.faces,
            self.options,
            self._before_restore(p, loaded, n, result.schedule),
            partial(self._warn, p),
        )
        return postprocess_batch(p, images, n, self._composite(p, composited), restore), result.schedule

    def _before_restore(
        self, p: StableDiffusionProcessing, loaded: LoadedModel, n: int, schedule: str
    ) -> Callable[[int, Any], None]:
        """Saves image i of batch n before face restoration (A1111's -before-face-restoration copy)."""

        def save(i: int, image: Any) -> None:
            index = min(n * p.batch_size + i, len(p.all_seeds) - 1)
            self._save(p, image, index, self.infotext(p, loaded, index, schedule), "-before-face-restoration")

        return save

    def _generate(
        self,
        p: StableDiffusionProcessing,
        loaded: LoadedModel,
        request: engine.BatchRequest,
        job: JobContext,
        switch: Any = None,
    ) -> engine.BatchResult:
        """One engine batch with the job's extensions, progress, previews and interrupt; `switch` (an
        engine ModelSwitch from `refiner.model_switch`) hands the rest of the schedule to the refiner."""
        preview = self._batch_preview(loaded)
        extensions = self._extensions(p, loaded)
        try:
            result = engine.generate(
                loaded.sd,
                request,
                callback=self._step_callback(preview),
                control=self.state.control,
                conditioning_cache=job.conditioning_cache,
                extensions=[*extensions, preview] if preview is not None else extensions,
                nan_check=self.nan_check,
                vae_fallback=bool(self.options.auto_vae_precision),
                switch=switch,
                interrupt_decode=self._interrupt_decode(loaded, request),
                progress_bar=self.console_progress,
            )
        finally:
            if preview is not None:
                preview.close()  # also when the batch failed before its POST_LOOP
            problems, self.preview_problems = self.preview_problems, []
            self._warn(p, problems)
        spec, _ = find_sampler(result.sampler)
        sampler_params.record(
            p, result, img2img=request.init is not None, discards_already=spec.discard_next_to_last_sigma
        )
        return result

    def _composite(
        self, p: StableDiffusionProcessing, record: dict[int, img2img.Composited] | None = None
    ) -> Callable[[int, Any], Any] | None:
        """img2img's paste-back, colour correction and overlay of the original after each image's
        postprocessing."""
        if not img2img.is_img2img(p):
            return None
        overlay = bool(self.options.overlay_inpaint)
        return lambda index, image: img2img.composite(p, index, image, overlay, record)

    def _extensions(self, p: StableDiffusionProcessing, loaded: LoadedModel) -> list[Extension]:
        """The batch's engine extensions: those the handlers and scripts put on `p` (networks...), then
        the A1111 denoiser (cfg callbacks, `combine_denoised` overrides)."""
        bridge = a1111_cfg(self.callbacks, p, loaded)
        return [*p.engine_extensions.values(), *([bridge] if bridge is not None else [])]

    def _request(
        self, p: StableDiffusionProcessing, prompts: list[str], job: JobContext
    ) -> engine.BatchRequest:
        o = self.options
        if p.sampler_name is None or p.scheduler is None:
            raise RuntimeError("the sampler is resolved in _prepare before any batch runs")
        return engine.BatchRequest(
            prompts=prompts,
            negative_prompts=p.negative_prompts,
            seeds=p.seeds,
            subseeds=p.subseeds,
            subseed_strength=p.subseed_strength if p.seed_enable_extras else 0.0,
            seed_resize_from=(p.seed_resize_from_w, p.seed_resize_from_h) if p.seed_enable_extras else None,
            width=p.width,
            height=p.height,
            steps=p.steps,
            cfg_scale=p.cfg_scale,
            sampler=a1111_sampler.engine_sampler_name(p.sampler_name, p.sd_model),
            schedule=p.scheduler,
            clip_skip=p.clip_skip,
            eta_ancestral=p.eta if p.eta is not None else o.eta_ancestral,
            eta_ddim=p.eta if p.eta is not None else o.eta_ddim,  # A1111: `eta` is DDIM's too
            eta_noise_seed_delta=int(o.eta_noise_seed_delta),
            noise_device=source_of_setting(o.randn_source),
            emphasis=o.emphasis,
            comma_padding_backtrack=int(o.comma_padding_backtrack),
            use_old_scheduling=bool(o.use_old_scheduling),
            pad_cond_uncond=bool(o.pad_cond_uncond),
            token_override=job.embeddings,
            control_units=job.control.units,
            noise_x0=job.control.noise_x0,
            init=img2img.init_latents(p, o) if img2img.is_img2img(p) else None,
            aesthetic_score=float(o.sdxl_refiner_high_aesthetic_score),
            negative_aesthetic_score=float(o.sdxl_refiner_low_aesthetic_score),
            vae_tiling=vae_tiling.policy(o, p),
            tuning=sampler_params.sampler_tuning(p, o),
            token_merging_ratio=token_merging.ratio(p, o),
            extra_noise_hook=sampler_params.extra_noise_hook(self.callbacks),
        )

    def batch_rng(self, p: StableDiffusionProcessing, loaded: LoadedModel, size: tuple[int, int]) -> ImageRNG:
        """A1111's `p.rng` for a batch: the noise of its seeds at the latent `size` (h, w), from the
        source and ENSD of the settings (what the engine draws unless a script changes it)."""
        o, model, extras = self.options, loaded.sd, p.seed_enable_extras
        return ImageRNG(
            (model.latent_channels, *size),
            p.seeds,
            subseeds=p.subseeds,
            subseed_strength=p.subseed_strength if extras else 0.0,
            seed_resize_from_h=p.seed_resize_from_h if extras else 0,
            seed_resize_from_w=p.seed_resize_from_w if extras else 0,
            source=noise_device(source_of_setting(o.randn_source), model.device),
            eta_noise_seed_delta=int(o.eta_noise_seed_delta),
            device=model.device,
        )

    def _embedding_hook(self, loaded: LoadedModel, reload: bool = True):
        """This job's textual-inversion hook; changed embedding files are picked up here unless the job
        says `do_not_reload_embeddings` (A1111)."""
        if self.embeddings is None:
            return None
        if reload:
            self.embeddings.refresh()
        return self.embeddings.for_model(loaded.sd).hook()

    def _activate_networks(self, p: StableDiffusionProcessing, prompts: list[str]) -> list[str]:
        """Strip `<name:args>` tags from the batch's prompts and activate their networks (A1111)."""
        stripped, data = parse_prompts(prompts)
        p.extra_network_data = data
        if not p.disable_extra_networks:
            add_network_to_prompt(p, data, self.options, self.known_lora)
            self._warn(p, self.extra_networks.activate(p, data))
        return stripped

    def known_lora(self, name: str) -> bool:
        """A LoRA file of that name (or alias) is in the LoRA folders."""
        files = getattr(self.extra_networks.lookup("lora"), "files", None)
        return files is not None and files.find(name) is not None

    def _use_bundled_embeddings(
        self, p: StableDiffusionProcessing, loaded: LoadedModel, job: JobContext
    ) -> None:
        """The batch's LoRA files' bundled embeddings join the job's (the embeddings folder wins a name)."""
        if job.embeddings is None:
            return
        bundled = {} if p.disable_extra_networks else self.extra_networks.bundled_embeddings()
        usable, _ = partition(bundled, loaded.sd.family, loaded.sd.text_encoders)
        for name in job.embeddings.set_bundled(usable):
            log.warning("Skip bundled embedding %r: the embeddings folder has one of that name", name)

    def _round_sizes_down(self, p: StableDiffusionProcessing) -> None:
        """A size that is not a multiple of 8 is rounded down to one, as A1111 makes its image (its
        latents are width // 8 by height // 8); the job says so, and the infotext has the real size."""
        for name, side in (("width", "wide"), ("height", "high")):
            value = getattr(p, name)
            if value % 8:
                setattr(p, name, value - value % 8)
                self._warn(
                    p,
                    [
                        f"{name} {value} is not a multiple of 8: the image is {value - value % 8} px {side}, as A1111's"
                    ],
                )

    @staticmethod
    def _warn(p: StableDiffusionProcessing, warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in p.warnings:
                log.warning(warning)
                p.warnings.append(warning)

    def _preview_method(self, loaded: LoadedModel) -> str:
        """Opt `show_progress_type`, with A1111's Approx NN for Full on an offloaded model (--medvram,
        --lowvram) unless opt `live_preview_allow_lowvram_full`."""
        method = str(self.options.show_progress_type)
        if (
            method == previews.FULL
            and _offloaded(loaded)
            and not self.options.live_preview_allow_lowvram_full
        ):
            return previews.APPROX_NN
        return method

    def _interrupt_decode(self, loaded: LoadedModel, request: engine.BatchRequest):
        """Opt `live_preview_fast_interrupt`: how an interrupted batch is decoded (None: the VAE)."""
        method = self._preview_method(loaded)
        if not self.options.live_preview_fast_interrupt or method == previews.FULL:
            return None
        return interrupt_decoder(method, self.preview_networks, (request.width, request.height))

    def _batch_preview(self, loaded: LoadedModel) -> BatchPreview | None:
        """This batch's live previews by opt `show_progress_type`, or None when they are off."""
        o = self.options
        if not o.live_previews_enable or int(o.show_progress_every_n_steps) <= 0:
            return None
        method = self._preview_method(loaded)
        offloaded = _offloaded(loaded)
        return BatchPreview(
            self.preview_worker,
            self.state,
            loaded.sd,
            method,
            self.preview_networks,
            content=str(o.live_preview_content),
            synchronous=method == previews.FULL and offloaded,
        )

    def _step_callback(self, preview: BatchPreview | None):
        every = int(self.options.show_progress_every_n_steps)

        def on_step(info: StepInfo) -> None:
            self.state.set_step(info.step + 1, info.total)
            self.total_progress.step(self.state.job_no, self.state.job_count, info.step + 1, info.total)
            if preview is not None and ((info.step + 1) % every == 0 or info.step + 1 == info.total):
                preview.on_step(info)

        return on_step

    # -- infotext and files -----------------------------------------------------------------------
    def infotext(
        self, p: StableDiffusionProcessing, loaded: LoadedModel | None, index: int, schedule: str
    ) -> str:
        """A1111's infotext of image `index`; `loaded` gives the VAE entries (None: no model yet)."""
        o = self.options
        variation = p.seed_enable_extras and p.subseed_strength > 0
        resize = p.seed_enable_extras and p.seed_resize_from_w > 0 and p.seed_resize_from_h > 0
        params: dict[str, Any] = {
            "Steps": p.steps,
            "Sampler": p.sampler_name,
            "Schedule type": schedule,
            "CFG scale": _number(p.cfg_scale),
            "Image CFG scale": _number(image_cfg)
            if (image_cfg := getattr(p, "image_cfg_scale", None))
            else None,
            "Seed": p.all_seeds[index],
            "Face restoration": p.extra_generation_params.get(face_restore.INFOTEXT_KEY),
            "Size": f"{p.width}x{p.height}",
            "Model hash": p.sd_model_hash if o.add_model_hash_to_info else None,
            "Model": p.sd_model_name if o.add_model_name_to_info else None,
            "VAE hash": loaded.vae_hash if loaded else None,
            "VAE": loaded.vae_name if loaded else None,
            "Variation seed": p.all_subseeds[index] if variation else None,
            "Variation seed strength": _number(p.subseed_strength) if variation else None,
            "Seed resize from": f"{p.seed_resize_from_w}x{p.seed_resize_from_h}" if resize else None,
            "Denoising strength": p.extra_generation_params.get("Denoising strength"),
            "Conditional mask weight": p.extra_generation_params.get("Conditional mask weight"),
            "Clip skip": p.clip_skip if p.clip_skip > 1 else None,
            "ENSD": o.eta_noise_seed_delta if o.eta_noise_seed_delta and _uses_ensd(p.sampler_name) else None,
            **token_merging.infotext(p, o),
            "RNG": o.randn_source if o.randn_source != "GPU" else None,
            "Tiling": tiling.infotext_value(p),
            "Emphasis": o.emphasis if o.emphasis != "Original" and _uses_brackets(p, index) else None,
            "Pad conds": True if o.pad_cond_uncond else None,
            "Old prompt editing timelines": True if o.use_old_scheduling else None,
            "Precision": precision_infotext(loaded.sd) if loaded else None,
            **_resolved(p, index, p.extra_generation_params),
            "Version": VERSION if o.add_version_to_infotext else None,
        }
        return build_infotext(p.all_prompts[index], p.all_negative_prompts[index], params)

    def _outdir(self, general: str, per_tab: str, override: str | None, dated: bool) -> Path:
        """A1111's folder choice: the job's own, else opt `outdir_samples`/`outdir_grids`, else the tab's."""
        base = self.paths.resolve(
            override or getattr(self.options, general) or getattr(self.options, per_tab)
        )
        return base / datetime.now().strftime("%Y-%m-%d") if dated else base

    def _grid(self, p: StableDiffusionProcessing, images: list[Any]) -> Any:
        """A1111's grid of the job's images, when it is shown (opt `return_grid`) or saved (`grid_save`):
        not for one image (opt `grid_only_if_multiple`), nor when larger than opt `img_max_size_mp`."""
        o = self.options
        if not images or p.do_not_save_grid or not (o.return_grid or o.grid_save):
            return None
        if len(images) < 2 and o.grid_only_if_multiple:
            return None
        rows = image_files.grid_rows(
            len(images), p.batch_size, int(o.n_rows), bool(o.grid_prevent_empty_spots)
        )
        cols = math.ceil(len(images) / rows)
        width, height = max(i.width for i in images), max(i.height for i in images)
        megapixels, limit = cols * width * rows * height / 1_000_000, float(o.img_max_size_mp)
        if megapixels > limit:
            note = f"No grid: it would be {megapixels:g} megapixels, more than the limit of {limit:g}"
            self._warn(p, [f"{note} (setting img_max_size_mp)"])
            return None
        return image_files.image_grid(images, p.batch_size, rows, layout=grid_layout(self.callbacks))

    def _save(self, p: StableDiffusionProcessing, image, index: int, infotext: str, suffix: str = "") -> None:
        o = self.options
        if p.do_not_save_samples or not o.samples_save:
            return
        if (self.state.interrupted or self.state.skipped) and not o.save_incomplete_images:
            return  # A1111: an interrupted or skipped batch is shown, not saved
        directory = self._outdir(
            "outdir_samples", f"outdir_{job_kind(p)}_samples", p.outpath_samples, o.save_to_dirs
        )
        with self._saving(p, "the image", directory):
            params = ImageSaveParams(image, p, str(directory), {"parameters": infotext})
            if self.callbacks is not None:  # A1111: callbacks may replace the image or its infotext
                self.callbacks.call("before_image_saved", params)
            pattern = o.samples_filename_pattern or image_files.DEFAULT_PATTERN
            decoration = image_file_decoration(
                p, index, p.all_seeds[index], p.all_prompts[index], params.image, pattern
            )  # every A1111 token ([steps], [seed_last], [batch_number], ...)
            path = image_files.save_image_file(
                params.image,
                directory,
                seed=0 if decoration else None,  # nothing to add: the counter alone
                prompt=p.all_prompts[index],
                infotext=params.pnginfo.get("parameters", infotext),
                extension=o.samples_format,
                pnginfo_enabled=o.enable_pnginfo,
                save_txt=o.save_txt,
                pattern=decoration,
                suffix=suffix,
                add_number=o.save_images_add_number,
                settings=image_files.SaveSettings.from_options(o),
            )
            if self.callbacks is not None:
                params.filename = str(path)
                self.callbacks.call("image_saved", params)

    def _save_init_image(self, p: StableDiffusionProcessingImg2Img, image) -> None:
        """A1111 (opt `save_init_img`): the init image as given, named by the MD5 of its pixels, in
        `outdir_init_images`, in the samples' format and quality (`samples_format`, `jpeg_quality`,
        `webp_lossless`); its own PNG info is kept. `p.init_img_hash` is that name."""
        digest = hashlib.md5(image.tobytes()).hexdigest()  # noqa: S324 (a file name, as A1111's)
        p.init_img_hash = digest
        directory = self.paths.resolve(self.options.outdir_init_images)
        settings = image_files.SaveSettings.from_options(self.options)
        ext = image_files.fitting_extension(image, str(self.options.samples_format))
        with self._saving(p, "the init image", directory):
            directory.mkdir(parents=True, exist_ok=True)
            data = image_files.encode_image(image, ext, None, existing_info=image.info, **settings.encoding())
            write_atomic(directory / f"{digest}.{ext}", data)

    def _save_grid(self, p: StableDiffusionProcessing, grid, infotext: str) -> None:
        o = self.options
        if p.do_not_save_grid or not o.grid_save:
            return
        directory = self._outdir(
            "outdir_grids", f"outdir_{job_kind(p)}_grids", p.outpath_grids, o.grid_save_to_dirs
        )
        decoration = ""
        if o.grid_extended_filename:  # A1111: grid-NNNN-<the samples' pattern>, else grid-NNNN
            pattern = image_files.default_filename_pattern(o.samples_filename_pattern, o.save_to_dirs)
            decoration = image_file_decoration(p, 0, p.all_seeds[0], p.all_prompts[0], grid, pattern)
        with self._saving(p, "the grid", directory):
            image_files.save_image_file(
                grid,
                directory,
                seed=0 if decoration else None,  # None: the counter alone
                prompt=p.all_prompts[0],
                infotext=infotext,
                extension=o.grid_format,
                pnginfo_enabled=o.enable_pnginfo,
                basename_prefix="grid",
                pattern=decoration,
                settings=image_files.SaveSettings.from_options(o),
            )

    def _save_detected_maps(self, p: StableDiffusionProcessing, maps: list[tuple[str, Any]]) -> None:
        """sd-webui-controlnet's autosave: each map as NNNNN-<preprocessor>.png in
        `control_net_detectedmap_dir`/<preprocessor>/, relative to the job's image folder."""
        if not maps:
            return
        samples = self._outdir("outdir_samples", f"outdir_{job_kind(p)}_samples", p.outpath_samples, False)
        base = samples / str(self.options.control_net_detectedmap_dir or "detected_maps")
        for name, picture in maps:
            folder = base / name
            with self._saving(p, "a detected map", folder):
                image_files.save_image_file(
                    picture, folder, seed=None, prompt="", infotext=None, suffix=f"-{name}"
                )

    def _write_params_txt(self, p: StableDiffusionProcessing, infotext: str) -> None:
        """`<data>/params.txt` holds the last job's first infotext (A1111's paste button reads it)."""
        with self._saving(p, "params.txt", self.paths.params_file):
            write_atomic(self.paths.params_file, infotext.encode("utf-8"))

    @contextlib.contextmanager
    def _saving(self, p: StableDiffusionProcessing, what: str, where: Path) -> Iterator[None]:
        """Nothing is lost when a file cannot be written (full disk, a folder that is a file, no
        permission, a bad format setting): the job goes on and returns its images, with a warning."""
        try:
            yield
        except Exception as exc:
            message = (
                f"Could not save {what} to {where}: {type(exc).__name__}: {exc}; the image is still returned"
            )
            self._warn(p, [message])


def job_kind(p: StableDiffusionProcessing) -> str:
    """ "img2img" or "txt2img": the job's label in progress reports and its output folders."""
    return "img2img" if img2img.is_img2img(p) else "txt2img"


def _resolved(p: StableDiffusionProcessing, index: int, extra: dict[str, Any]) -> dict[str, Any]:
    """A1111 1.7+: an `extra_generation_params` value may be a function of the image (`p`, `index`,
    `prompt_text`, `negative_prompt`...), as the hires prompts are; a failing one is left out."""
    if not any(callable(v) for v in extra.values()):
        return extra
    args = {"p": p, "index": index, "prompt_text": p.all_prompts[index]}
    args["negative_prompt"] = p.all_negative_prompts[index]
    resolved = {}
    for key, value in extra.items():
        try:
            resolved[key] = value(**args) if callable(value) else value
        except Exception:
            log.exception("Infotext value %r failed", key)
            resolved[key] = None
    return resolved


def _number(value: float) -> float | int:
    """7.0 -> 7, as A1111's UI writes it; 7.5 stays 7.5."""
    return int(value) if float(value).is_integer() else value


def _per_image(value: str | list[str], total: int) -> list[str]:
    if isinstance(value, list):
        if not value:
            return [""] * total
        return [str(value[i % len(value)]) for i in range(total)]
    return [value or ""] * total


def _resolve_seed(seed: int | float | str | None) -> int:
    """-1 (or nothing) is a random seed; an int is taken exactly (a float round trip would change
    seeds above 2^53); "12" and 12.0 are read as 12."""
    if seed in (None, ""):
        return random.randrange(MAX_SEED)
    try:
        value = seed if isinstance(seed, int) else _int_from_text(seed)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequestError(f"seed must be a whole number, got {seed!r}") from exc
    return random.randrange(MAX_SEED) if value == -1 else int(value)


def _int_from_text(seed: float | str) -> int:
    try:
        return int(str(seed).strip())
    except ValueError:
        return int(float(seed))


def _seed_list(seed: Any, total: int, step: int) -> list[int]:
    """Seeds of a job's images: `seed + i * step`, or, as A1111, one seed per image when `seed` is a
    list (scripts such as Prompt matrix pass lists; -1 entries are drawn at random)."""
    if isinstance(seed, (list, tuple)):
        if not seed:
            raise InvalidRequestError("seed must not be an empty list")
        seeds = [_resolve_seed(s) for s in seed]
        return [seeds[i % len(seeds)] for i in range(total)]
    first = _resolve_seed(seed)
    return [first + i * step for i in range(total)]


def _uses_brackets(p: StableDiffusionProcessing, index: int) -> bool:
    text = p.all_prompts[index] + p.all_negative_prompts[index]
    return "(" in text or "[" in text


def _img2img_unit(p: StableDiffusionProcessingImg2Img, unit: ControlNetUnit) -> ControlNetUnit:
    """sd-webui-controlnet's img2img rules for an enabled unit: without an image it uses the job's
    first init image, and an inpaint module gets the job's mask (A1111's `image_mask`, inverted and
    blurred as the job's); `inpaint_only` on a job that has a mask becomes `inpaint` (A1111's overlay
    already keeps the pixels outside the mask); with "only masked" its images and masks are cropped to
    the job's crop region."""
    module = get_preprocessor(unit.module or "none") if _known_module(unit.module) else None
    job_mask = getattr(p, "image_mask", None)
    changes: dict[str, Any] = {}
    if not unit.images:
        changes["images"] = [decode_image(p.init_images[0], "img2img init image")]
        if module is not None and module.uses_mask and job_mask is not None:
            changes["masks"] = [img2img.controlnet_mask(p)]
    if module is not None and module.name == "inpaint_only" and job_mask is not None:
        changes["module"] = "inpaint"
    if getattr(p, "inpaint_full_res", False) and job_mask is not None:  # "only masked": the crop's part
        mode = _A1111_RESIZE.get(unit.resize_mode, 1)
        for name in ("images", "masks"):
            arrays = changes.get(name, getattr(unit, name))
            changes[name] = [img2img.controlnet_crop(p, a, mode) for a in arrays]
    return dataclasses.replace(unit, **changes) if changes else unit


_A1111_RESIZE = {"Just Resize": 0, "Crop and Resize": 1, "Resize and Fill": 2}  # images.resize_image's modes


def _known_module(module: str) -> bool:
    try:
        get_preprocessor(module or "none")
    except InvalidRequestError:
        return False  # the ControlNet service refuses it with the unit's number
    return True


def _offloaded(loaded: LoadedModel) -> bool:
    """The model runs with --medvram/--lowvram offloading (`SDModel.extra["offload"]`, issue 14)."""
    return loaded.sd.offloaded


def _uses_ensd(sampler: str | None) -> bool:
    spec, _ = find_sampler(sampler)
    return spec.uses_ensd
