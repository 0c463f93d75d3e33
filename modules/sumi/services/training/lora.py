"""The LoRA / LyCORIS training kind: a dataset folder in, `models/Lora/<output_name>.safetensors` out.

    lora = app.lora_training
    run, job = lora.submit(LoraTrainingSettings(output_name="my-style", data_root="datasets/style", ...))
    run.view()       # loss points, samples, files, status: the Train tab polls this

The folder is read as A1111's trainers read it (images and same-stem `.txt` captions, else the file
name), optionally into aspect-ratio buckets; latents are encoded once (with `flip`, the mirrored image's
too). Captions get the `caption_prefix` (kept first, never shuffled or dropped), then kohya's
`keep_tokens` / shuffle / dropout, drawn from seeds of the step, so a resumed run sees the batches the
uninterrupted one saw. Without `cache_latents`, each use draws a fresh sample from the cached latent
distribution: what re-encoding every step gives when there is no pixel augmentation, at no VAE cost.

Files: the final network in kohya's layout with `ss_*` metadata, and `<file>.state` (adapters, optimizer,
step) to continue with `resume=True`; an interrupt saves both for the steps done. Intermediate files
(`save_every`) and samples (`create_image_every`) go to `<data>/textual_inversion/<date>/<name>/` as
`Lora/<name>-<step>.safetensors` and `images/<name>-<step>.png`. The Lora registry is refreshed when
the run ends, so `<lora:name:1>` works at once.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.training.dataset import DatasetSettings, LatentDataset
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.loop import LoopSettings, StepReport
from modules.sumi.engine.training.lora import (
    LoraFileInfo,
    LoraSettings,
    LoraTrainSettings,
    TrainableNetwork,
    TrainingBatch,
    lora_metadata,
    save_lora,
    tag_frequency,
    train_lora,
)
from modules.sumi.engine.training.lora.trainer import RESUME_KIND, settings_digest
from modules.sumi.engine.training.model_io import check_trainable
from modules.sumi.engine.training.objective import ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState, load_resume_state, save_resume_state
from modules.sumi.services.networks.files import NetworkFileRegistry
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.dataset import (
    FolderContents,
    FolderSettings,
    check_folder,
    confined_setting,
    encode_folder,
    read_folder,
)
from modules.sumi.services.training.lora_settings import LoraTrainingSettings
from modules.sumi.services.training.service import CheckedKind, TrainingContext, TrainingService

LORA = "lora"
LOG_DIRECTORY = "textual_inversion"  # A1111's default log folder, shared with the other kinds


class LoraTraining(CheckedKind):
    """The "lora" kind of `TrainingService`: check, queue, and (for the API) wait."""

    def __init__(
        self, training: TrainingService, paths: DataPaths, options: Options, loras: NetworkFileRegistry
    ) -> None:
        self.trainer = LoraTrainer(paths, options)
        super().__init__(training, LORA, self.trainer, loras.refresh)


@dataclass
class LogFolders:
    files: Path | None
    images: Path | None


class LoraTrainer:
    def __init__(self, paths: DataPaths, options: Options) -> None:
        self.paths = paths
        self.options = options

    def check(self, settings: LoraTrainingSettings) -> None:
        check_folder(self.dataset_folder(settings))
        self.output(settings)

    def dataset_folder(self, settings: LoraTrainingSettings) -> Path:
        return confined_setting(self.paths, settings.data_root, "data_root")

    def output(self, settings: LoraTrainingSettings) -> Path:
        folder = self.paths.lora_dir
        path = folder / f"{settings.output_name}.safetensors"
        if path.parent != folder:
            raise TrainingError(f"output_name {settings.output_name!r}: not a plain file name")
        return path

    def train(self, context: TrainingContext, settings: LoraTrainingSettings) -> None:
        check_trainable(context.model)
        output = self.output(settings)
        state_path = output.with_name(output.name + ".state")
        network = network_settings(settings)
        resume = self._resume(context, settings, network, state_path)
        if resume is not None and resume.step >= settings.steps:
            context.say(f"{settings.output_name} has already been trained to step {resume.step}")
            return
        context.say(f"Preparing dataset from {settings.data_root}...")
        contents = read_folder(self._folder_settings(settings), context.should_stop)
        with torch.no_grad():
            dataset = encode_folder(
                context.model, contents, dataset_settings(settings), False, context.should_stop
            )
        training = self._train_settings(settings, dataset)
        info = self._file_info(context, settings, contents, len(dataset.images))
        steps = _StepHandler(context, settings, network, training, info, dataset, self._log(settings))
        context.begin(resume.step if resume else 0, _start_message(settings, contents, resume))
        result = train_lora(
            context.model,
            steps.batch,
            network,
            training,
            resume=resume,
            on_step=steps.on_step,
            should_stop=context.should_stop,
            on_start=steps.attach,
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        save_lora(output, result.tensors, steps.metadata(result.step), dtype=settings.save_precision)
        save_resume_state(state_path, result.resume)
        context.wrote(output)

    def _resume(
        self, context: TrainingContext, settings: LoraTrainingSettings, network: LoraSettings, path: Path
    ) -> ResumeState | None:
        if not settings.resume or not path.is_file():
            return None
        state = load_resume_state(path, RESUME_KIND)
        if state.settings_digest != settings_digest(context.model, network):
            raise TrainingError(
                f"resume: {path.name} was saved with other network settings (algo, rank, alpha, conv, "
                "target, text encoder, seed) or for another model family; use those or turn resume off"
            )
        return state

    def _folder_settings(self, settings: LoraTrainingSettings) -> FolderSettings:
        return FolderSettings(
            self.dataset_folder(settings),
            settings.training_width,
            settings.training_height,
            word_regex=str(self.options.dataset_filename_word_regex or ""),
            join_string=str(self.options.dataset_filename_join_string or ""),
            buckets=settings.buckets,
        )

    def _train_settings(self, settings: LoraTrainingSettings, dataset: LatentDataset) -> LoraTrainSettings:
        loop = LoopSettings(
            settings.steps, settings.learn_rate_schedule(), dataset.gradient_step, seed=settings.seed
        )
        return LoraTrainSettings(
            loop=loop,
            objective=ObjectiveSettings(
                offset_noise=settings.offset_noise,
                min_snr_gamma=settings.min_snr_gamma,
                debiased_estimation=settings.debiased_estimation,
            ),
            optimizer=settings.optimizer,
            unet_lr=settings.unet_lr,
            text_encoder_lr=settings.text_encoder_lr,
            mixed_precision=settings.mixed_precision,
            gradient_checkpointing=settings.gradient_checkpointing,
            clip_skip=max(1, int(self.options.CLIP_stop_at_last_layers or 1)),
        )

    def _file_info(
        self, context: TrainingContext, settings: LoraTrainingSettings, contents: FolderContents, images: int
    ) -> LoraFileInfo:
        folder = self.dataset_folder(settings).name
        return LoraFileInfo(
            settings.output_name,
            resolution=(settings.training_width, settings.training_height),
            num_train_images=images,
            tag_frequency={folder: tag_frequency(image.caption for image in contents.images)},
            training_started_at=time.time(),
            sd_model_name=context.checkpoint_name,
            sd_model_hash=context.checkpoint_hash,
        )

    def _log(self, settings: LoraTrainingSettings) -> LogFolders:
        if not (settings.save_every or settings.create_image_every):
            return LogFolders(None, None)
        log = confined_setting(self.paths, LOG_DIRECTORY, "log_directory")
        log = log / datetime.date.today().isoformat() / settings.output_name
        return LogFolders(
            log / "Lora" if settings.save_every else None,
            log / "images" if settings.create_image_every else None,
        )


def network_settings(settings: LoraTrainingSettings) -> LoraSettings:
    return LoraSettings(
        algo=settings.algo,
        rank=settings.rank,
        alpha=settings.alpha,
        conv_rank=settings.conv_rank,
        conv_alpha=settings.conv_alpha,
        unet_target=settings.unet_target,
        train_text_encoder=settings.train_text_encoder,
        seed=settings.seed,
    )


def dataset_settings(settings: LoraTrainingSettings) -> DatasetSettings:
    """The dataset's prompts are the captions (after the prefix, which is never shuffled or dropped)."""
    return DatasetSettings(
        settings.output_name,
        (caption_line(settings),),
        settings.batch_size,
        settings.gradient_step,
        settings.shuffle_tags,
        settings.tag_drop_out,
        "once" if settings.cache_latents else "random",
        1,
        settings.seed,
        settings.keep_tokens,
        settings.flip,
    )


def caption_line(settings: LoraTrainingSettings) -> str:
    prefix = settings.caption_prefix.strip()
    return f"{prefix}, [filewords]" if prefix else "[filewords]"


def _start_message(
    settings: LoraTrainingSettings, contents: FolderContents, resume: ResumeState | None
) -> str:
    note = f" (skipped unreadable files: {', '.join(contents.skipped)})" if contents.skipped else ""
    if resume is not None:
        note += f"; resumed at step {resume.step}"
    return f"Training {settings.algo} {settings.output_name} on {len(contents.images)} images{note}"


class _StepHandler:
    """What happens around each step: the batches, the report, intermediate files and samples."""

    def __init__(
        self,
        context: TrainingContext,
        settings: LoraTrainingSettings,
        network: LoraSettings,
        training: LoraTrainSettings,
        info: LoraFileInfo,
        dataset: LatentDataset,
        folders: LogFolders,
    ) -> None:
        self.context, self.settings, self.network_settings = context, settings, network
        self.training, self.info, self.dataset, self.folders = training, info, dataset, folders
        self.network: TrainableNetwork | None = None
        first = dataset.images[0]
        self.first_caption = first.fixed_prompt or caption_line(settings).replace(
            "[filewords]", first.filewords
        )

    def attach(self, network: TrainableNetwork) -> None:
        self.network = network

    def batch(self, step: int, micro: int, generator: torch.Generator) -> TrainingBatch:
        batch = self.dataset.batch(step, micro, generator)
        return TrainingBatch(batch.prompts, latents=batch.latents, loss_weight=batch.weights)

    def metadata(self, step: int) -> dict[str, str]:
        info = dataclasses.replace(self.info, steps=step)
        return lora_metadata(self.context.model, self.network_settings, self.training, info)

    def on_step(self, report: StepReport) -> None:
        epoch, epoch_step = self.dataset.epoch_of(report.step - 1)
        self.context.report(report, f" [epoch {epoch}: {epoch_step + 1}/{self.dataset.steps_per_epoch}]")
        files, images, s = self.folders.files, self.folders.images, self.settings
        if files is not None and self.network is not None and report.step % s.save_every == 0:
            path = files / f"{s.output_name}-{report.step}.safetensors"
            files.mkdir(parents=True, exist_ok=True)
            save_lora(
                path, self.network.file_state_dict(), self.metadata(report.step), dtype=s.save_precision
            )
            self.context.wrote(path)
        if images is not None and report.step % s.create_image_every == 0:
            self.context.sample(self.sample_fields(), report.step, images)

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
