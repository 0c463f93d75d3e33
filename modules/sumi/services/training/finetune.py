"""The full fine-tune / DreamBooth training kind: a dataset folder in, `models/Stable-diffusion/<output_name>
.safetensors` out (an A1111 single-file checkpoint, listed in the checkpoint dropdown when the run ends).

    finetune = app.finetune_training
    run, job = finetune.submit(FinetuneTrainingSettings(output_name="my-dog", data_root="datasets/dog",
                                                        instance_prompt="a photo of sks dog",
                                                        class_data_root="datasets/dogs", class_prompt="a photo of a dog"))
    run.view()       # loss points, samples, files, status: the Train tab polls this

The run trains the loaded checkpoint's UNet (and text encoders when asked) in place and puts every weight
back when it ends (finished, interrupted or failed): generation afterwards is exactly what it was.
Resident LoRA patches are taken out first, so the trained weights are the checkpoint's own.

DreamBooth: with a `class_data_root`, the class folder is first filled up to `num_class_images` with
txt2img images of the class prompt made by the loaded model (progress "Generating class images i/N"),
then each step trains on instance and class batches with the prior-preservation loss.

Files: the checkpoint (the EMA weights when EMA is on) with `ss_*` / `modelspec.*` metadata, the source
checkpoint's `.yaml` beside it when it has one, and `<file>.state` (trained weights, optimizer, EMA,
step) to continue with `resume=True`; an interrupt saves both for the steps done. Intermediate
checkpoints (`save_every`) and samples (`create_image_every`, drawn with the EMA weights) go to
`<data>/textual_inversion/<date>/<name>/` as `Stable-diffusion/<name>-<step>.safetensors` and
`images/<name>-<step>.png`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.accel import compiled
from modules.sumi.engine.extensions import release_residents
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.training.errors import TrainingError
from modules.sumi.engine.training.finetune import (
    RESUME_KIND,
    FinetuneBatch,
    FinetuneFileInfo,
    FinetuneSession,
    FinetuneTrainSettings,
    finetune_metadata,
    preserved_weights,
    save_finetuned,
    train_finetune,
)
from modules.sumi.engine.training.loop import LoopSettings, StepReport
from modules.sumi.engine.training.lora import TrainingBatch, tag_frequency
from modules.sumi.engine.training.model_io import autocast, check_trainable
from modules.sumi.engine.training.objective import ObjectiveSettings
from modules.sumi.engine.training.resume import ResumeState, load_resume_state, save_resume_state
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.class_images import (
    ClassImageRequest,
    generate_class_images,
    missing_count,
)
from modules.sumi.services.training.dataset import FolderSettings, check_folder, confined_setting
from modules.sumi.services.training.finetune_data import FinetuneData, prepare_data
from modules.sumi.services.training.finetune_settings import FinetuneTrainingSettings
from modules.sumi.services.training.service import CheckedKind, TrainingContext, TrainingService

FINETUNE = "finetune"
LOG_DIRECTORY = "textual_inversion"  # A1111's default log folder, shared with the other kinds


class FinetuneTraining(CheckedKind):
    """The "finetune" kind of `TrainingService`: check, queue, and (for the API) wait."""

    def __init__(
        self,
        training: TrainingService,
        paths: DataPaths,
        options: Options,
        refresh_checkpoints: Callable[[], Any],
    ) -> None:
        self.trainer = FinetuneTrainer(paths, options)
        super().__init__(training, FINETUNE, self.trainer, refresh_checkpoints)


@dataclass
class LogFolders:
    files: Path | None
    images: Path | None


class FinetuneTrainer:
    def __init__(self, paths: DataPaths, options: Options) -> None:
        self.paths = paths
        self.options = options

    def check(self, settings: FinetuneTrainingSettings) -> None:
        check_folder(self.dataset_folder(settings))
        self.output(settings)
        if settings.prior_preservation:
            folder = self.class_folder(settings)
            if folder.resolve() == self.dataset_folder(settings).resolve():
                raise TrainingError(
                    "class_data_root: the class images need a folder of their own, not data_root"
                )
            if folder.exists() and not folder.is_dir():
                raise TrainingError(f"class_data_root: {folder} is a file, not a folder")
            if missing_count(folder, settings.num_class_images) and not settings.class_prompt.strip():
                raise TrainingError(
                    f"class_prompt: {folder.name} holds fewer than {settings.num_class_images} images and "
                    "there is no class prompt to generate the missing ones from"
                )

    def dataset_folder(self, settings: FinetuneTrainingSettings) -> Path:
        return confined_setting(self.paths, settings.data_root, "data_root")

    def class_folder(self, settings: FinetuneTrainingSettings) -> Path:
        return confined_setting(self.paths, settings.class_data_root, "class_data_root")

    def output(self, settings: FinetuneTrainingSettings) -> Path:
        folder = self.paths.ckpt_dirs[0]
        path = folder / f"{settings.output_name}.safetensors"
        if path.parent != folder:
            raise TrainingError(f"output_name {settings.output_name!r}: not a plain file name")
        return path

    def train(self, context: TrainingContext, settings: FinetuneTrainingSettings) -> None:
        model = context.model
        check_trainable(model)
        autocast(model, settings.mixed_precision)  # fp16 off CUDA fails before class images are made
        output = self.output(settings)
        if model.source and Path(model.source).resolve() == output.resolve():
            raise TrainingError(
                f"output_name {settings.output_name!r} is the loaded checkpoint's own file: choose another name"
            )
        resume = self._resume(settings, _state_path(output))
        if resume is not None and resume.step >= settings.steps:
            context.say(f"{settings.output_name} has already been trained to step {resume.step}")
            return
        if settings.prior_preservation and not self._class_images(context, settings):
            return
        context.say(f"Preparing dataset from {settings.data_root}...")
        data = prepare_data(model, settings, self._folders(settings), context.should_stop)
        self._train_and_save(context, settings, data, resume, output)
        _copy_config(model, output)
        context.wrote(output)

    def _train_and_save(
        self,
        context: TrainingContext,
        settings: FinetuneTrainingSettings,
        data: FinetuneData,
        resume: ResumeState | None,
        output: Path,
    ) -> None:
        """Train on the generation model and save the checkpoint (and state), then put its weights back."""
        model = context.model
        training = self._train_settings(settings, data)
        info = self._file_info(context, settings, data)
        handler = _StepHandler(context, settings, training, info, data, self._log(settings))
        release_residents(model)  # before the snapshot: the weights put back are the checkpoint's own
        with _compiled_graphs_dropped(model), preserved_weights(_trained_modules(model, settings)):
            context.begin(resume.step if resume else 0, _start_message(settings, data, resume))
            result = train_finetune(
                model,
                handler.batch,
                training,
                resume=resume,
                on_step=handler.on_step,
                should_stop=context.should_stop,
                on_start=handler.attach,
            )
            save_finetuned(output, model, handler.metadata(result.step), dtype=settings.save_precision)
            if settings.save_state:
                save_resume_state(_state_path(output), result.resume)

    def _class_images(self, context: TrainingContext, settings: FinetuneTrainingSettings) -> bool:
        """Fill the class folder; False when interrupted meanwhile (the images made so far are kept)."""
        folder = self.class_folder(settings)
        request = ClassImageRequest(
            folder,
            settings.num_class_images,
            settings.class_prompt,
            settings.class_negative_prompt,
            settings.class_steps,
            settings.class_sampler_name,
            settings.class_cfg_scale,
            settings.training_width,
            settings.training_height,
            settings.seed,
        )
        written = generate_class_images(
            request,
            context.generate,
            lambda i, n: context.say(f"Generating class images {i}/{n}"),
            context.should_stop,
        )
        for path in written:
            context.wrote(path)
        if context.should_stop():
            context.say(f"Interrupted while generating class images ({len(written)} made and kept)")
            return False
        return True

    def _resume(self, settings: FinetuneTrainingSettings, path: Path) -> ResumeState | None:
        if not settings.resume or not path.is_file():
            return None
        return load_resume_state(path, RESUME_KIND)

    def _folders(self, settings: FinetuneTrainingSettings) -> tuple[FolderSettings, FolderSettings | None]:
        instance = FolderSettings(
            self.dataset_folder(settings),
            settings.training_width,
            settings.training_height,
            word_regex=str(self.options.dataset_filename_word_regex or ""),
            join_string=str(self.options.dataset_filename_join_string or ""),
            buckets=settings.buckets,
        )
        if not settings.prior_preservation:
            return instance, None
        classes = dataclasses.replace(
            instance, data_root=self.class_folder(settings), limit=settings.num_class_images
        )
        return instance, classes

    def _train_settings(
        self, settings: FinetuneTrainingSettings, data: FinetuneData
    ) -> FinetuneTrainSettings:
        loop = LoopSettings(
            settings.steps, settings.learn_rate_schedule(), data.instance.gradient_step, seed=settings.seed
        )
        return FinetuneTrainSettings(
            loop=loop,
            objective=ObjectiveSettings(
                offset_noise=settings.offset_noise,
                min_snr_gamma=settings.min_snr_gamma,
                debiased_estimation=settings.debiased_estimation,
            ),
            optimizer=settings.optimizer,
            unet_lr=settings.unet_lr,
            train_text_encoder=settings.train_text_encoder,
            text_encoder_lr=settings.text_encoder_lr,
            ema_decay=settings.ema_decay if settings.ema else None,
            prior_loss_weight=settings.prior_loss_weight,
            mixed_precision=settings.mixed_precision,
            gradient_checkpointing=settings.gradient_checkpointing,
            clip_skip=max(1, int(self.options.CLIP_stop_at_last_layers or 1)),
        )

    def _file_info(
        self, context: TrainingContext, settings: FinetuneTrainingSettings, data: FinetuneData
    ) -> FinetuneFileInfo:
        frequency = {
            self.dataset_folder(settings).name: tag_frequency(
                i.caption for i in data.instance_contents.images
            )
        }
        return FinetuneFileInfo(
            settings.output_name,
            resolution=(settings.training_width, settings.training_height),
            num_train_images=len(data.instance.images),
            num_reg_images=data.class_count,
            tag_frequency=frequency,
            training_started_at=time.time(),
            sd_model_name=context.checkpoint_name,
            sd_model_hash=context.checkpoint_hash,
            training_comment=settings.training_comment,
            instance_prompt=settings.instance_prompt.strip(),
            class_prompt=settings.class_prompt.strip() if settings.prior_preservation else "",
        )

    def _log(self, settings: FinetuneTrainingSettings) -> LogFolders:
        if not (settings.save_every or settings.create_image_every):
            return LogFolders(None, None)
        log = confined_setting(self.paths, LOG_DIRECTORY, "log_directory")
        log = log / datetime.date.today().isoformat() / settings.output_name
        return LogFolders(
            log / "Stable-diffusion" if settings.save_every else None,
            log / "images" if settings.create_image_every else None,
        )


def _state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state")


@contextlib.contextmanager
def _compiled_graphs_dropped(model: SDModel) -> Iterator[None]:
    """The fast path's compiled UNet graphs go when the run ends: training may have given the weights
    new storage (CUDA graphs read fixed addresses); the next job compiles again."""
    try:
        yield
    finally:
        compiled.forget(model)


def _trained_modules(model: SDModel, settings: FinetuneTrainingSettings) -> list[torch.nn.Module]:
    encoders = [spec.model for spec in model.text_encoders] if settings.train_text_encoder else []
    return [model.unet, *encoders]


def _copy_config(model: SDModel, output: Path) -> None:
    """The base checkpoint's `.yaml` (v-prediction, heads...) travels with the fine-tuned one."""
    source = Path(model.source).with_suffix(".yaml") if model.source else None
    if source is not None and source.is_file():
        shutil.copyfile(source, output.with_suffix(".yaml"))


def _start_message(settings: FinetuneTrainingSettings, data: FinetuneData, resume: ResumeState | None) -> str:
    contents = data.instance_contents
    note = f" and {data.class_count} class images" if data.classes is not None else ""
    if contents.skipped:
        note += f" (skipped unreadable files: {', '.join(contents.skipped)})"
    if resume is not None:
        note += f"; resumed at step {resume.step}"
    kind = "DreamBooth" if settings.instance_prompt.strip() else "fine-tune"
    return f"Training {kind} {settings.output_name} on {len(contents.images)} images{note}"


class _StepHandler:
    """What happens around each step: the batches, the report, intermediate files and samples."""

    def __init__(
        self,
        context: TrainingContext,
        settings: FinetuneTrainingSettings,
        training: FinetuneTrainSettings,
        info: FinetuneFileInfo,
        data: FinetuneData,
        folders: LogFolders,
    ) -> None:
        self.context, self.settings, self.training = context, settings, training
        self.info, self.data, self.folders = info, data, folders
        self.session: FinetuneSession | None = None
        first = data.instance.images[0]
        self.first_caption = first.fixed_prompt or first.filewords

    def attach(self, session: FinetuneSession) -> None:
        self.session = session

    def batch(self, step: int, micro: int, generator: torch.Generator) -> TrainingBatch | FinetuneBatch:
        instance = self.data.instance
        batch = instance.batch(step, micro, generator)
        trained = TrainingBatch(batch.prompts, latents=batch.latents, loss_weight=batch.weights)
        if self.data.classes is None:
            return trained
        prior = self.data.classes.batch(step * instance.gradient_step + micro, 0, generator)
        return FinetuneBatch(trained, TrainingBatch(prior.prompts, latents=prior.latents))

    def metadata(self, step: int) -> dict[str, str]:
        info = dataclasses.replace(self.info, steps=step)
        return finetune_metadata(self.context.model, self.training, info)

    def on_step(self, report: StepReport) -> None:
        instance = self.data.instance
        epoch, epoch_step = instance.epoch_of(report.step - 1)
        self.context.report(report, f" [epoch {epoch}: {epoch_step + 1}/{instance.steps_per_epoch}]")
        files, images, s = self.folders.files, self.folders.images, self.settings
        if self.session is None:
            return
        if files is not None and report.step % s.save_every == 0:
            path = files / f"{s.output_name}-{report.step}.safetensors"
            with self.session.for_sampling():
                save_finetuned(path, self.context.model, self.metadata(report.step), dtype=s.save_precision)
            self.context.wrote(path)
        if images is not None and report.step % s.create_image_every == 0:
            with self.session.for_sampling():
                self.context.sample(self.sample_fields(), report.step, images)
                release_residents(self.context.model)  # a sample's <lora:...> stays out of training

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
