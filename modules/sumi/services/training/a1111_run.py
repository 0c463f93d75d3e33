"""What A1111's two trainers share: the dataset, the loop, the log folder, the loss CSV, intermediate
files and sample images. `EmbeddingTrainer` and `HypernetworkTrainer` supply what is trained.

Log folder (A1111's layout): `<log_directory>/<YYYY-MM-DD>/<name>/` with `<kind dir>/<name>-<step>.pt`
every `save_*_every` steps, `images/<name>-<step>.png` every `create_image_every` steps, the loss CSV
every `training_write_csv_every` steps, and the settings as JSON. Deviation: files are numbered with
the steps done (A1111 names them one step ahead).

`data_root` and `log_directory` are confined to the data folder (or a --gradio-allowed-path folder).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modules.sumi.engine.model import SDModel
from modules.sumi.engine.sampling.samplers import SAMPLERS
from modules.sumi.engine.text.encoder import Conditioning, encode_prompts
from modules.sumi.engine.text.prompt_syntax import parse_prompt_attention
from modules.sumi.engine.training.dataset import DatasetSettings, LatentDataset
from modules.sumi.engine.training.loop import LoopSettings, StepReport, make_optimizer, run_loop
from modules.sumi.engine.training.model_io import autocast, check_trainable, training_guard, unet_predictor
from modules.sumi.engine.training.objective import DiffusionObjective, ObjectiveSettings
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.a1111_settings import A1111TrainingSettings
from modules.sumi.services.training.dataset import (
    FolderSettings,
    check_folder,
    confined_setting,
    encode_folder,
    read_folder,
    read_template,
)
from modules.sumi.services.training.service import TrainingContext

TokenOverride = Callable[..., Any]


@dataclass
class Trainee:
    """What one run trains: its tensors, where it starts, and where its file goes."""

    name: str
    parameters: list[torch.Tensor]
    start_step: int
    output: Path
    optimizer_state: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunFolders:
    log: Path
    files: Path | None
    images: Path | None
    image_embeddings: Path | None = None


class A1111Trainer:
    """The shared run; subclasses say what is trained (`prepare`, `patched`, `save`, `text_grad`)."""

    kind = ""
    files_folder = ""  # the log sub-folder of intermediate files
    csv_name = ""

    def __init__(self, paths: DataPaths, options: Options) -> None:
        self.paths = paths
        self.options = options

    # -- what a kind provides ----------------------------------------------------------------------------
    def check(self, settings: Any) -> None:
        """Everything that can be checked before the job is queued (a 4xx at the API)."""
        read_template(self.paths.templates_dir, settings.template_filename)
        check_folder(self.dataset_folder(settings))
        self.log_folder(settings)

    def prepare(self, context: TrainingContext, settings: Any) -> Trainee:
        raise NotImplementedError

    def patched(self, context: TrainingContext, trainee: Trainee) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def save(self, context: TrainingContext, trainee: Trainee, path: Path, step: int, optimizer: Any) -> None:
        raise NotImplementedError

    def token_override(self, context: TrainingContext, trainee: Trainee) -> TokenOverride | None:
        return None

    def text_grad(self) -> bool:
        """Whether the loss needs gradients through the text encoder (textual inversion)."""
        return False

    def sample_fields(self) -> dict[str, Any]:
        return {}

    def around_sample(self, trainee: Trainee) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def after_save(self, trainee: Trainee, path: Path, step: int, image: Path | None) -> None:
        """Hook after an intermediate save + sample (textual inversion's image embeddings)."""

    # -- the shared run ----------------------------------------------------------------------------------
    def train(self, context: TrainingContext, settings: A1111TrainingSettings) -> None:
        check_trainable(context.model)
        lines = read_template(self.paths.templates_dir, settings.template_filename)
        trainee = self.prepare(context, settings)
        if trainee.start_step >= settings.steps:
            context.say(
                f"{trainee.name} has already been trained to step {trainee.start_step} (max {settings.steps})"
            )
            return
        folders = self.folders(settings, trainee.name)
        trainee.extra["folders"] = folders
        context.say(f"Preparing dataset from {settings.data_root}...")
        contents = read_folder(self._folder_settings(settings), context.should_stop)
        dataset_settings = DatasetSettings(
            trainee.name,
            lines,
            settings.batch_size,
            settings.gradient_step,
            settings.shuffle_tags,
            settings.tag_drop_out,
            settings.latent_sampling_method,
            max(1, int(self.options.training_image_repeats_per_epoch)),
            settings.seed,
        )
        with training_guard(context.model), self.patched(context, trainee):
            dataset = encode_folder(
                context.model, contents, dataset_settings, settings.use_weight, context.should_stop
            )
            note = f" (skipped unreadable files: {', '.join(contents.skipped)})" if contents.skipped else ""
            self._write_settings(folders.log, settings, context, len(dataset.images))
            self._run(context, settings, trainee, dataset, folders, note)
        context.wrote(trainee.output)

    def _run(
        self,
        context: TrainingContext,
        settings: A1111TrainingSettings,
        trainee: Trainee,
        dataset: LatentDataset,
        folders: RunFolders,
        note: str,
    ) -> None:
        model = context.model
        objective = DiffusionObjective(
            model.scheduler_config,
            model.prediction_type,
            ObjectiveSettings(
                offset_noise=settings.offset_noise,
                min_snr_gamma=settings.min_snr_gamma,
                debiased_estimation=settings.debiased_estimation,
            ),
        )
        optimizer = make_optimizer("AdamW", trainee.parameters)
        if trainee.optimizer_state is not None:
            optimizer.load_state_dict(trainee.optimizer_state)
            note += "; loaded the saved optimizer state"
        loop = LoopSettings(
            settings.steps,
            settings.learn_rate_schedule(),
            dataset.gradient_step,
            settings.clip_grad_mode,
            settings.clip_schedule(),
            settings.seed,
        )
        losses = _LossFunction(self, context, trainee, dataset, objective, settings)
        context.begin(trainee.start_step, f"Training {self.kind} {trainee.name}{note}")

        def on_step(report: StepReport) -> None:
            epoch, epoch_step = dataset.epoch_of(report.step - 1)
            context.report(report, f" [epoch {epoch}: {epoch_step + 1}/{dataset.steps_per_epoch}]")
            self._write_loss(folders.log, report, dataset.steps_per_epoch)
            self._checkpoint(context, settings, trainee, folders, report.step, optimizer, losses.last_prompt)

        run_loop(
            trainee.parameters,
            optimizer,
            loop,
            losses,
            start_step=trainee.start_step,
            on_step=on_step,
            should_stop=context.should_stop,
        )
        done = context.run.view().step
        self.save(context, trainee, trainee.output, max(done, trainee.start_step), optimizer)

    def _checkpoint(
        self,
        context: TrainingContext,
        settings: A1111TrainingSettings,
        trainee: Trainee,
        folders: RunFolders,
        step: int,
        optimizer: Any,
        last_prompt: str,
    ) -> None:
        saved = None
        if folders.files is not None and step % settings.save_every == 0:
            saved = folders.files / f"{trainee.name}-{step}{trainee.output.suffix}"
            self.save(context, trainee, saved, step, optimizer)
        image = None
        if folders.images is not None and step % settings.create_image_every == 0:
            fields = {**preview_fields(settings, last_prompt), **self.sample_fields()}
            with self.around_sample(trainee):
                image = context.sample(fields, step, folders.images)
        if saved is not None or image is not None:
            self.after_save(trainee, saved or Path(), step, image)

    # -- folders and logs ------------------------------------------------------------------------------
    def dataset_folder(self, settings: A1111TrainingSettings) -> Path:
        return self._confined(settings.data_root, "data_root")

    def log_folder(self, settings: A1111TrainingSettings) -> Path:
        return self._confined(settings.log_directory or ".", "log_directory")

    def _confined(self, value: str, key: str) -> Path:
        return confined_setting(self.paths, value, key)

    def folders(self, settings: A1111TrainingSettings, name: str) -> RunFolders:
        log = self.log_folder(settings) / datetime.date.today().isoformat() / name
        files = log / self.files_folder if settings.save_every > 0 else None
        images = log / "images" if settings.create_image_every > 0 else None
        for folder in (log, files, images):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        return RunFolders(log, files, images)

    def _folder_settings(self, settings: A1111TrainingSettings) -> FolderSettings:
        return FolderSettings(
            self.dataset_folder(settings),
            settings.training_width,
            settings.training_height,
            settings.varsize,
            settings.use_weight,
            str(self.options.dataset_filename_word_regex or ""),
            str(self.options.dataset_filename_join_string or ""),
        )

    def _write_loss(self, log: Path, report: StepReport, epoch_len: int) -> None:
        """A1111's loss CSV: step, epoch, epoch_step, loss, learn_rate every N steps (option)."""
        every = int(self.options.training_write_csv_every or 0)
        if every <= 0 or report.step % every:
            return
        path = log / self.csv_name
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            if new:
                writer.writerow(["step", "epoch", "epoch_step", "loss", "learn_rate"])
            epoch, epoch_step = divmod(report.step - 1, epoch_len)
            writer.writerow([report.step, epoch, epoch_step, f"{report.loss:.7f}", report.learn_rate])

    def _write_settings(
        self, log: Path, settings: A1111TrainingSettings, context: TrainingContext, images: int
    ) -> None:
        if not self.options.save_training_settings_to_txt:
            return
        data = {
            "model_name": context.checkpoint_name,
            "model_hash": context.checkpoint_hash,
            "num_of_dataset_images": images,
            **dataclasses.asdict(settings),
        }
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
        (log / f"settings-{stamp}.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


class _LossFunction:
    """The loss of one micro-batch: its prompts encoded (with gradients for textual inversion, cached
    otherwise), the UNet's prediction under the chosen precision, the weighted objective."""

    def __init__(
        self,
        trainer: A1111Trainer,
        context: TrainingContext,
        trainee: Trainee,
        dataset: LatentDataset,
        objective: DiffusionObjective,
        settings: A1111TrainingSettings,
    ) -> None:
        self.model: SDModel = context.model
        self.dataset = dataset
        self.objective = objective
        self.precision = settings.mixed_precision
        self.grad = trainer.text_grad()
        self.override = trainer.token_override(context, trainee)
        self.clip_skip = int(trainer.options.CLIP_stop_at_last_layers or 1)
        self.emphasis = str(trainer.options.emphasis or "Original")
        self.last_prompt = ""
        self._cache: dict[tuple[str, ...], Conditioning] = {}

    def __call__(self, step: int, micro: int, generator: torch.Generator) -> torch.Tensor:
        batch = self.dataset.batch(step, micro, generator)
        self.last_prompt = batch.prompts[0]
        latents = batch.latents.to(self.model.device)
        scale = self.model.vae_scale
        height, width = latents.shape[-2] * scale, latents.shape[-1] * scale
        with autocast(self.model, self.precision):
            cond = self._encode(batch.prompts)
            predict = unet_predictor(self.model, cond, height, width)
            return self.objective.loss(predict, latents, generator, batch.weights)

    def _encode(self, prompts: list[str]) -> Conditioning:
        if self.grad:
            return self._encode_now(prompts)
        key = tuple(prompts)
        if key not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            with torch.no_grad():
                self._cache[key] = self._encode_now(prompts)
        return self._cache[key]

    def _encode_now(self, prompts: list[str]) -> Conditioning:
        return encode_prompts(
            self.model.text_encoders,
            prompts,
            self.clip_skip,
            emphasis=self.emphasis,
            parse=_attention,
            token_override=self.override,
            grad=self.grad,
        )


def _attention(text: str) -> list[tuple[str, float]]:
    return [(str(t), float(w)) for t, w in parse_prompt_attention(text)]


def preview_fields(settings: A1111TrainingSettings, last_prompt: str) -> dict[str, Any]:
    """The sample's txt2img fields: the preview_* fields, or A1111's default (the last training prompt,
    20 steps, the training size)."""
    if not settings.preview_from_txt2img:
        return {
            "prompt": last_prompt,
            "steps": 20,
            "width": settings.training_width,
            "height": settings.training_height,
        }
    return {
        "prompt": settings.preview_prompt,
        "negative_prompt": settings.preview_negative_prompt,
        "steps": settings.preview_steps,
        "sampler_name": sampler_name(settings),
        "cfg_scale": settings.preview_cfg_scale,
        "seed": settings.preview_seed,
        "width": settings.preview_width,
        "height": settings.preview_height,
    }


def sampler_name(settings: A1111TrainingSettings) -> str:
    """`preview_sampler_name`, or the sampler `preview_sampler_index` (A1111 before 1.6) points at."""
    index = settings.preview_sampler_index
    return settings.preview_sampler_name if index is None else SAMPLERS[index].name
