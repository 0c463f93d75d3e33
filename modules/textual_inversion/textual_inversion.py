"""A1111's `modules.textual_inversion.textual_inversion`: embeddings as extensions see them, and the
train-tab functions over Sumi's training service.

- `Embedding(vec, name, step=None)` as A1111 builds it (`.save(filename)` writes A1111's file), or
  `Embedding.of(e)` over one of Sumi's loaded embeddings; `create_embedding_from_data(data, name)`
  reads any of the formats A1111 reads (the built-in Lora extension uses it for bundled embeddings).
- `EmbeddingDatabase`: the App's embeddings folder, read on access (`model_hijack.embedding_db`).
- `create_embedding(...)` and `train_embedding(...)` take A1111's arguments (positional or by name)
  and run as Sumi's queued jobs, with progress, the loss plot and samples in the Train tab.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from modules import shared
from modules.sumi.engine.networks.embeddings import embedding_from_data
from modules.sumi.engine.training.textual_inversion import (
    embedding_suffix,
    save_embedding_file,
    vector_checksum,
)
from modules.sumi.services.training.a1111 import output_file
from modules.sumi.services.training.a1111_settings import EmbeddingTrainingSettings
from modules.sumi.services.training.dataset import list_templates

log = logging.getLogger(__name__)

TRAIN_EMBEDDING_ARGS = [
    "id_task",
    "embedding_name",
    "learn_rate",
    "batch_size",
    "gradient_step",
    "data_root",
    "log_directory",
    "training_width",
    "training_height",
    "varsize",
    "steps",
    "clip_grad_mode",
    "clip_grad_value",
    "shuffle_tags",
    "tag_drop_out",
    "latent_sampling_method",
    "use_weight",
    "create_image_every",
    "save_embedding_every",
    "template_filename",
    "save_image_with_stored_embedding",
    "preview_from_txt2img",
    "preview_prompt",
    "preview_negative_prompt",
    "preview_steps",
    "preview_sampler_name",
    "preview_cfg_scale",
    "preview_seed",
    "preview_width",
    "preview_height",
]
"""`train_embedding`'s positional arguments in A1111 1.10's order."""


class Embedding:
    """A1111's embedding object: `vec` is `[n, D]` (SDXL: `{"clip_l": ..., "clip_g": ...}`)."""

    def __init__(self, vec: Any, name: str, step: int | None = None) -> None:
        self.vec = vec
        self.name = name
        self.step = step
        self.shape: int | None = None
        self.vectors = 0
        self.cached_checksum: str | None = None
        self.sd_checkpoint: str | None = None
        self.sd_checkpoint_name: str | None = None
        self.optimizer_state_dict: dict | None = None
        self.filename: str | None = None
        self.hash: str | None = None
        self.shorthash: str | None = None
        self.loaded: bool | None = None
        if isinstance(vec, dict):
            self.shape = sum(int(v.shape[-1]) for v in vec.values())
            self.vectors = max(int(v.shape[0]) for v in vec.values())
        elif isinstance(vec, torch.Tensor):
            self.shape, self.vectors = int(vec.shape[-1]), int(vec.shape[0])

    @classmethod
    def of(cls, embedding: Any) -> Embedding:
        """A copy of the fields of one of Sumi's embeddings."""
        made = cls(embedding.vectors, embedding.name, embedding.step)
        made.sd_checkpoint = embedding.sd_checkpoint
        made.sd_checkpoint_name = embedding.sd_checkpoint_name
        made.filename = embedding.filename
        made.set_hash(embedding.sha256)
        made.loaded = True
        return made

    def save(self, filename: str) -> None:
        """A1111's file: `.pt` with `string_to_param` (SDXL: `.safetensors` with clip_l/clip_g)."""
        path = Path(filename)
        if isinstance(self.vec, dict) and path.suffix != ".safetensors":
            path = path.with_suffix(embedding_suffix(self.vec))
        save_embedding_file(
            path, self.name, self.vec, self.step or 0, self.sd_checkpoint, self.sd_checkpoint_name
        )

    def checksum(self) -> str:
        """A1111's short checksum of the vectors (cached, as A1111 does)."""
        if self.cached_checksum is None:
            self.cached_checksum = vector_checksum(self.vec)
        return self.cached_checksum

    def set_hash(self, v: str) -> None:
        self.hash = v
        self.shorthash = v[:12]


class DirWithTextualInversionEmbeddings:
    """A1111's record of one embeddings folder."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mtime: float | None = None

    def has_changed(self) -> bool:
        if not os.path.isdir(self.path):
            return False
        mtime = os.path.getmtime(self.path)
        return self.mtime is None or mtime > self.mtime

    def update(self) -> None:
        if os.path.isdir(self.path):
            self.mtime = os.path.getmtime(self.path)


class EmbeddingDatabase:
    """A1111's `embedding_db` over the App's embeddings folders (read on access, never stale)."""

    @property
    def embedding_dirs(self) -> dict[str, DirWithTextualInversionEmbeddings]:
        return {str(f): DirWithTextualInversionEmbeddings(str(f)) for f in shared.app().embeddings.folders}

    def _split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        app = shared.app()
        active = app.models.active
        if active is None:  # no model yet: nothing can be called unusable
            return dict(app.embeddings.embeddings), {}
        view = app.embeddings.for_model(active.sd)
        return view.loaded, view.skipped_embeddings

    @property
    def word_embeddings(self) -> dict[str, Embedding]:
        """Embeddings the active model can use, by name."""
        return {name: Embedding.of(e) for name, e in self._split()[0].items()}

    @property
    def skipped_embeddings(self) -> dict[str, Embedding]:
        """Embeddings made for another model family (A1111 lists them as skipped)."""
        return {name: Embedding.of(e) for name, e in self._split()[1].items()}

    @property
    def expected_shape(self) -> int:
        active = shared.app().models.active
        if active is None:
            return -1
        return sum(int(spec.model.config.hidden_size) for spec in active.sd.text_encoders)

    def get_expected_shape(self) -> int:
        return self.expected_shape

    def load_textual_inversion_embeddings(
        self, force_reload: bool = False, sync_with_sd_model: bool = True
    ) -> None:
        """Rescan the folders: new and changed files are read, removed ones forgotten."""
        shared.app().embeddings.refresh()

    def register_embedding(self, embedding: Any, model: Any = None) -> Any:
        name = getattr(embedding, "name", embedding)
        log.warning(
            "embedding_db.register_embedding(%s) ignored: Sumi reads embeddings from files only", name
        )
        return embedding


def create_embedding_from_data(
    data: Any, name: str, filename: str = "unknown embedding file", filepath: str | None = None
) -> Embedding:
    """An embedding from a loaded file's contents, in any format A1111 reads; a clear error otherwise."""
    made = Embedding.of(embedding_from_data(data, name, filepath or filename))
    made.filename = filepath or filename
    made.loaded = None
    made.set_hash("")
    return made


def create_embedding(name: str, num_vectors_per_token: int, overwrite_old: bool, init_text: str = "*") -> str:
    """Create `<embeddings>/<name>.pt` from the init text's token vectors; returns the file name."""
    return str(
        shared.app().a1111_training.create_embedding(name, num_vectors_per_token, overwrite_old, init_text)
    )


def train_embedding(*args: Any, **kwargs: Any) -> tuple[Embedding | None, str]:
    """Train as A1111's `train_embedding(id_task, embedding_name, learn_rate, ...)`; waits for the run
    and returns `(embedding, filename)` as A1111 does (a failed run raises its error)."""
    if len(args) > len(TRAIN_EMBEDDING_ARGS):
        raise TypeError(f"train_embedding takes at most {len(TRAIN_EMBEDDING_ARGS)} positional arguments")
    values = dict(zip(TRAIN_EMBEDDING_ARGS, args, strict=False)) | kwargs
    app = shared.app()
    run = app.a1111_training.train_embedding(EmbeddingTrainingSettings.from_args(values))
    view = run.view()
    if view.status == "failed":
        raise RuntimeError(view.message)
    path = output_file(run)
    embedding = app.embeddings.embeddings.get(str(values.get("embedding_name")))
    return (Embedding.of(embedding) if embedding is not None else None), str(path or "")


def list_textual_inversion_templates() -> list[str]:
    """The template file names in `textual_inversion_templates/`."""
    return sorted(list_templates(shared.app().paths.templates_dir))
