"""A1111's Train tab as a service: create an embedding or a hypernetwork, train either as a queued job.

    a1111 = app.a1111_training
    a1111.create_embedding("my-style", num_vectors_per_token=4, init_text="painting")   # -> Path
    a1111.create_hypernetwork("my-hn", [768, 320, 640, 1280], layer_structure="1, 2, 1")
    run, job = a1111.submit_embedding(EmbeddingTrainingSettings(embedding_name="my-style", ...))
    run.view()       # loss points, samples, files, status: the Train tab polls this

Creating runs on the worker (it reads the loaded model's text encoders). Training settings are checked
before the job is queued (template, dataset folder, name), so a bad request fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from modules.sumi.engine.model import SDModel
from modules.sumi.services.jobs.queue import Job, JobQueue
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from modules.sumi.services.networks.files import NetworkFileRegistry
from modules.sumi.services.settings.options import Options
from modules.sumi.services.settings.paths import DataPaths
from modules.sumi.services.training.a1111_settings import (
    EmbeddingTrainingSettings,
    HypernetworkTrainingSettings,
)
from modules.sumi.services.training.dataset import list_templates
from modules.sumi.services.training.hypernetwork import HypernetworkTrainer, create_hypernetwork_file
from modules.sumi.services.training.run import TrainingRun
from modules.sumi.services.training.service import TrainingKind, TrainingService
from modules.sumi.services.training.textual_inversion import EmbeddingTrainer, create_embedding_file

EMBEDDING = "embedding"
HYPERNETWORK = "hypernetwork"


class A1111Training:
    """The embedding and hypernetwork kinds of `TrainingService`, and A1111's create functions."""

    def __init__(
        self,
        training: TrainingService,
        queue: JobQueue,
        model: Callable[[], SDModel],
        paths: DataPaths,
        options: Options,
        embeddings: EmbeddingDatabase,
        hypernetworks: NetworkFileRegistry,
    ) -> None:
        self.training = training
        self.queue = queue
        self._model = model
        self.paths = paths
        self.embeddings = embeddings
        self.hypernetworks = hypernetworks
        self.embedding_trainer = EmbeddingTrainer(paths, options, embeddings)
        self.hypernetwork_trainer = HypernetworkTrainer(paths, options, hypernetworks)
        training.register(
            TrainingKind(
                EMBEDDING,
                self.embedding_trainer.train,
                lambda s: s.steps,
                lambda s: s.embedding_name,
                embeddings.refresh,
            )
        )
        training.register(
            TrainingKind(
                HYPERNETWORK,
                self.hypernetwork_trainer.train,
                lambda s: s.steps,
                lambda s: s.hypernetwork_name,
                hypernetworks.refresh,
            )
        )

    def templates(self) -> list[str]:
        """The template file names for the Train tab's dropdown."""
        return sorted(list_templates(self.paths.templates_dir))

    def create_embedding(
        self, name: str, num_vectors_per_token: int = 1, overwrite_old: bool = False, init_text: str = "*"
    ) -> Path:
        """A1111's `create_embedding`; the new file is usable in prompts at once."""
        folder = self.paths.embeddings_dir

        def create() -> Path:
            return create_embedding_file(
                self._model(), folder, name, num_vectors_per_token, overwrite_old, init_text
            )

        path = self.queue.run("create-embedding", create)
        self.embeddings.refresh()
        return path

    def create_hypernetwork(
        self,
        name: str,
        enable_sizes: Sequence[int | str],
        overwrite_old: bool = False,
        layer_structure: str | Sequence[float] | None = None,
        activation_func: str | None = None,
        weight_init: str | None = None,
        add_layer_norm: bool = False,
        use_dropout: bool = False,
        dropout_structure: str | Sequence[float] | None = None,
    ) -> Path:
        """A1111's `create_hypernetwork` (in `--hypernetwork-dir`); listed at once."""
        path = create_hypernetwork_file(
            self.paths.hypernetwork_dir,
            name,
            enable_sizes,
            overwrite_old,
            layer_structure,
            activation_func,
            weight_init,
            add_layer_norm,
            use_dropout,
            dropout_structure,
        )
        self.hypernetworks.refresh()
        return path

    def submit_embedding(self, settings: EmbeddingTrainingSettings) -> tuple[TrainingRun, Job]:
        self.embedding_trainer.check(settings)
        return self.training.submit(EMBEDDING, settings)

    def submit_hypernetwork(self, settings: HypernetworkTrainingSettings) -> tuple[TrainingRun, Job]:
        self.hypernetwork_trainer.check(settings)
        return self.training.submit(HYPERNETWORK, settings)

    def train_embedding(self, settings: EmbeddingTrainingSettings) -> TrainingRun:
        """Check, queue and wait (A1111's API answers when training is over)."""
        self.embedding_trainer.check(settings)
        return self.training.run(EMBEDDING, settings)

    def train_hypernetwork(self, settings: HypernetworkTrainingSettings) -> TrainingRun:
        self.hypernetwork_trainer.check(settings)
        return self.training.run(HYPERNETWORK, settings)


def output_file(run: TrainingRun) -> Path | None:
    """The trained file of a finished run (its last file written: the final save), or None."""
    files = run.view().files
    return files[-1] if files else None
