"""The ControlNet training kind: a dataset folder (images, `.txt` captions, control images) in,
`models/ControlNet/<output_name>.safetensors` out, in the layout sd-webui-controlnet users download.

    cn = app.controlnet_training
    run, job = cn.submit(ControlNetTrainingSettings(output_name="my-canny", data_root="datasets/shapes",
                                                   preprocessor="canny", ...))
    run.view()       # loss points, samples, files, status: the Train tab polls this

The images and captions are read as the LoRA kind reads them (A1111's rules), at the training size; the
control images come from the conditioning folder or a model-free preprocessor (`controlnet_dataset`).
Latents are encoded once; without `cache_latents` each use draws from the cached latent distribution.

Files: the ControlNet (fp16 or fp32) with its training metadata, and `<file>.state` (weights, optimizer,
step; about three times the fp32 ControlNet) to continue with `resume=True`; an interrupt saves both for
the steps done. Intermediate files (`save_every`) and samples (`create_image_every`) go to
`<data>/textual_inversion/<date>/<name>/` as `ControlNet/<name>-<step>.safetensors` and
`images/<name>-<step>.png`; a sample is a txt2img with the ControlNet being trained applied to the
preview control image (`preview_conditioning`, else the first training image's). The ControlNet list is
refreshed when the run ends, so the model is in the units' dropdown and `/controlnet/model_list` at once.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import ControlNetModel

from modules.sumi.engine.controlnet.models import LoadedControlNet
from modules.sumi.engine.training.controlnet import (
    RESUME_KIND,
    ControlNetBatch,
    ControlNetFileInfo,
    ControlNetTrainSettings,
    controlnet_metadata,
    create_controlnet,
    sampling_view,
    save_controlnet,
    settings_digest,
    train_controlnet,
)
from modules.sumi.engine.training.dataset import DatasetSettings, LatentDataset
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings, StepReport
from modules.sumi.engine.training.model_io import check_trainable
from modules.sumi.engine.training.objective import ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState, load_resume_state, save_resume_state
from modules.sumi.services.controlnet.models import ControlNetModels
from modules.sumi.services.controlnet.units import ControlNetUnit
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.controlnet_dataset import (
    ControlMaps,
    check_pairs,
    conditioning_folder,
    control_batch,
    folder_maps,
    preprocessed_maps,
    read_control_image,
    run_preprocessor,
)
from modules.sumi.services.training.controlnet_settings import ControlNetTrainingSettings
from modules.sumi.services.training.dataset import (
    FolderContents,
    FolderSettings,
    check_folder,
    confined_setting,
    encode_folder,
    read_folder,
)
from modules.sumi.services.training.service import CheckedKind, TrainingContext, TrainingService

CONTROLNET = "controlnet"
LOG_DIRECTORY = "textual_inversion"  # A1111's default log folder, shared with the other kinds


class ControlNetTraining(CheckedKind):
    """The "controlnet" kind of `TrainingService`: check, queue, and (for the API) wait."""

    def __init__(
        self, training: TrainingService, paths: DataPaths, options: Options, models: ControlNetModels
    ) -> None:
        self.trainer = ControlNetTrainer(paths, options, models)
        super().__init__(training, CONTROLNET, self.trainer, models.refresh)


@dataclass
class LogFolders:
    files: Path | None
    images: Path | None


class ControlNetTrainer:
    def __init__(self, paths: DataPaths, options: Options, models: ControlNetModels) -> None:
        self.paths = paths
        self.options = options
        self.models = models

    def check(self, settings: ControlNetTrainingSettings) -> None:
        images = check_folder(self.dataset_folder(settings))
        if settings.preprocessor_spec() is None:
            check_pairs(images, conditioning_folder(self.paths, settings))
        self._preview_file(settings)
        self.output(settings)

    def dataset_folder(self, settings: ControlNetTrainingSettings) -> Path:
        return confined_setting(self.paths, settings.data_root, "data_root")

    def output(self, settings: ControlNetTrainingSettings) -> Path:
        folder = self.paths.controlnet_dir
        path = folder / f"{settings.output_name}.safetensors"
        if path.parent != folder:
            raise TrainingError(f"output_name {settings.output_name!r}: not a plain file name")
        return path

    def train(self, context: TrainingContext, settings: ControlNetTrainingSettings) -> None:
        model = context.model
        check_trainable(model)
        output = self.output(settings)
        state_path = output.with_name(output.name + ".state")
        resume = self._resume(context, state_path, settings)
        if resume is not None and resume.step >= settings.steps:
            context.say(f"{settings.output_name} has already been trained to step {resume.step}")
            return
        context.say(f"Preparing dataset from {settings.data_root}...")
        contents = read_folder(self._folder_settings(settings), context.should_stop)
        maps = self._maps(settings, contents, context)
        with torch.no_grad():
            dataset = encode_folder(model, contents, dataset_settings(settings), False, context.should_stop)
        training = self._train_settings(settings, dataset)
        controlnet = create_controlnet(model, 3, settings.seed)
        info = self._file_info(context, settings, len(dataset.images))
        preview = self._preview_map(settings, maps, contents)
        steps = _StepHandler(
            context,
            settings,
            training,
            info,
            dataset,
            maps,
            controlnet,
            preview,
            self.models,
            self._log(settings),
        )
        context.begin(resume.step if resume else 0, _start_message(settings, contents, resume))
        result = train_controlnet(
            model,
            steps.batch,
            training,
            controlnet=controlnet,
            resume=resume,
            on_step=steps.on_step,
            should_stop=context.should_stop,
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        save_controlnet(output, result.controlnet, steps.metadata(result.step), dtype=settings.save_precision)
        save_resume_state(state_path, result.resume)
        context.wrote(output)

    def _resume(
        self, context: TrainingContext, path: Path, settings: ControlNetTrainingSettings
    ) -> ResumeState | None:
        if not settings.resume or not path.is_file():
            return None
        state = load_resume_state(path, RESUME_KIND)
        if state.settings_digest != settings_digest(context.model):
            raise TrainingError(
                f"resume: {path.name} was saved for a checkpoint of another family or layout; load that "
                "checkpoint or turn resume off"
            )
        return state

    def _folder_settings(self, settings: ControlNetTrainingSettings) -> FolderSettings:
        return FolderSettings(
            self.dataset_folder(settings),
            settings.training_width,
            settings.training_height,
            word_regex=str(self.options.dataset_filename_word_regex or ""),
            join_string=str(self.options.dataset_filename_join_string or ""),
        )

    def _maps(
        self, settings: ControlNetTrainingSettings, contents: FolderContents, context: TrainingContext
    ) -> ControlMaps:
        spec = settings.preprocessor_spec()
        if spec is not None:
            context.say(f"Making control images with {spec.name}...")
            return preprocessed_maps(spec, settings, contents, context.should_stop)
        folder = conditioning_folder(self.paths, settings)
        size = (settings.training_width, settings.training_height)
        return folder_maps(folder, contents, size, context.should_stop)

    def _preview_file(self, settings: ControlNetTrainingSettings) -> Path | None:
        if not settings.preview_conditioning.strip():
            return None
        path = confined_setting(self.paths, settings.preview_conditioning, "preview_conditioning")
        if not path.is_file():
            raise TrainingError(f"preview_conditioning: {settings.preview_conditioning} is not a file")
        return path

    def _preview_map(
        self, settings: ControlNetTrainingSettings, maps: ControlMaps, contents: FolderContents
    ) -> np.ndarray:
        """The samples' control image: the preview file (through the preprocessor when one is set), else
        the first training image's control image."""
        path = self._preview_file(settings)
        if path is None:
            return maps[contents.images[0].path.name]
        image = read_control_image(path, (settings.training_width, settings.training_height))
        spec = settings.preprocessor_spec()
        return image if spec is None else run_preprocessor(spec, settings, image)

    def _train_settings(
        self, settings: ControlNetTrainingSettings, dataset: LatentDataset
    ) -> ControlNetTrainSettings:
        loop = LoopSettings(
            settings.steps, settings.learn_rate_schedule(), dataset.gradient_step, seed=settings.seed
        )
        return ControlNetTrainSettings(
            loop=loop,
            objective=ObjectiveSettings(
                offset_noise=settings.offset_noise,
                min_snr_gamma=settings.min_snr_gamma,
                debiased_estimation=settings.debiased_estimation,
            ),
            optimizer=settings.optimizer,
            mixed_precision=settings.mixed_precision,
            gradient_checkpointing=settings.gradient_checkpointing,
            clip_skip=max(1, int(self.options.CLIP_stop_at_last_layers or 1)),
            proportion_empty_prompts=settings.proportion_empty_prompts,
        )

    def _file_info(
        self, context: TrainingContext, settings: ControlNetTrainingSettings, images: int
    ) -> ControlNetFileInfo:
        return ControlNetFileInfo(
            settings.output_name,
            resolution=(settings.training_width, settings.training_height),
            num_train_images=images,
            conditioning=settings.conditioning_source(),
            training_started_at=time.time(),
            sd_model_name=context.checkpoint_name,
            sd_model_hash=context.checkpoint_hash,
        )

    def _log(self, settings: ControlNetTrainingSettings) -> LogFolders:
        if not (settings.save_every or settings.create_image_every):
            return LogFolders(None, None)
        log = confined_setting(self.paths, LOG_DIRECTORY, "log_directory")
        log = log / datetime.date.today().isoformat() / settings.output_name
        return LogFolders(
            log / "ControlNet" if settings.save_every else None,
            log / "images" if settings.create_image_every else None,
        )


def dataset_settings(settings: ControlNetTrainingSettings) -> DatasetSettings:
    """The captions as they are (no template, shuffling or flipping: the control image must match)."""
    return DatasetSettings(
        settings.output_name,
        ("[filewords]",),
        settings.batch_size,
        settings.gradient_step,
        latent_sampling_method="once" if settings.cache_latents else "random",
        seed=settings.seed,
    )


def _start_message(
    settings: ControlNetTrainingSettings, contents: FolderContents, resume: ResumeState | None
) -> str:
    note = f" (skipped unreadable files: {', '.join(contents.skipped)})" if contents.skipped else ""
    if resume is not None:
        note += f"; resumed at step {resume.step}"
    return (
        f"Training ControlNet {settings.output_name} on {len(contents.images)} images, control images "
        f"from {settings.conditioning_source()}{note}"
    )


class _StepHandler:
    """What happens around each step: the batches, the report, intermediate files and samples."""

    def __init__(
        self,
        context: TrainingContext,
        settings: ControlNetTrainingSettings,
        training: ControlNetTrainSettings,
        info: ControlNetFileInfo,
        dataset: LatentDataset,
        maps: ControlMaps,
        controlnet: ControlNetModel,
        preview: np.ndarray,
        models: ControlNetModels,
        folders: LogFolders,
    ) -> None:
        self.context, self.settings, self.training, self.info = context, settings, training, info
        self.dataset, self.maps, self.controlnet, self.preview = dataset, maps, controlnet, preview
        self.models, self.folders = models, folders
        self.first_caption = dataset.images[0].fixed_prompt or dataset.images[0].filewords

    def batch(self, step: int, micro: int, generator: torch.Generator) -> ControlNetBatch:
        batch = self.dataset.batch(step, micro, generator)
        return ControlNetBatch(batch.prompts, control_batch(self.maps, batch.names), latents=batch.latents)

    def metadata(self, step: int) -> dict[str, str]:
        info = dataclasses.replace(self.info, steps=step)
        return controlnet_metadata(self.context.model, self.training, info)

    def on_step(self, report: StepReport) -> None:
        epoch, epoch_step = self.dataset.epoch_of(report.step - 1)
        self.context.report(report, f" [epoch {epoch}: {epoch_step + 1}/{self.dataset.steps_per_epoch}]")
        files, images, s = self.folders.files, self.folders.images, self.settings
        if files is not None and report.step % s.save_every == 0:
            path = files / f"{s.output_name}-{report.step}.safetensors"
            files.mkdir(parents=True, exist_ok=True)
            save_controlnet(path, self.controlnet, self.metadata(report.step), dtype=s.save_precision)
            self.context.wrote(path)
        if images is not None and report.step % s.create_image_every == 0:
            self.sample(report.step, images)

    def sample(self, step: int, folder: Path) -> None:
        """A txt2img with the ControlNet as trained so far, lent to the ControlNet models by name."""
        model = self.context.model
        with sampling_view(self.controlnet, model.dtype) as view:
            loaded = LoadedControlNet(view, model.family, f"{self.settings.output_name} (training)", 3)
            with self.models.lend(self.settings.output_name, loaded) as name:
                unit = ControlNetUnit(enabled=True, module="none", model=name, images=[self.preview])
                self.context.sample({**self.sample_fields(), "controlnet_units": [unit]}, step, folder)

    def sample_fields(self) -> dict[str, Any]:
        s = self.settings
        return {
            "prompt": s.preview_prompt or self.first_caption,
            "negative_prompt": s.preview_negative_prompt,
            "steps": s.preview_steps,
            "sampler_name": s.preview_sampler_name,
            "cfg_scale": s.preview_cfg_scale,
            "seed": s.preview_seed,
            "width": s.training_width,
            "height": s.training_height,
        }
