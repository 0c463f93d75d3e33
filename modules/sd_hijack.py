"""A1111's `modules.sd_hijack`, as far as extensions use it without patching the model.

Sumi never hijacks the model: conditioning, emphasis, embeddings and attention are its own code. So
`model_hijack.hijack()` / `undo_hijack()` / `apply_optimizations()` do nothing, and what remains
real is the text side extensions read:

- `model_hijack.embedding_db`: the textual-inversion embeddings (`word_embeddings` for the active
  model, `skipped_embeddings` with the others, A1111's `Embedding` fields), rescanned by
  `load_textual_inversion_embeddings()`;
- `model_hijack.get_prompt_lengths(text)`: `(tokens, limit)` as the prompt box's counter shows it;
- `model_hijack.clip`: the active model's text encoders (`shared.sd_model.cond_stage_model`).
"""

from __future__ import annotations

import logging
from typing import Any

from modules import shared

log = logging.getLogger(__name__)


class Embedding:
    """A1111's `textual_inversion.Embedding` fields over one of Sumi's embeddings (read-only copy)."""

    def __init__(self, embedding: Any) -> None:
        self.name = embedding.name
        self.vec = embedding.vectors  # a tensor [n, D]; SDXL: {"clip_l": ..., "clip_g": ...}
        self.shape = embedding.shape
        self.vectors = embedding.vector_count
        self.step = embedding.step
        self.filename = embedding.filename
        self.sd_checkpoint = embedding.sd_checkpoint
        self.sd_checkpoint_name = embedding.sd_checkpoint_name
        self.hash = embedding.sha256
        self.shorthash = embedding.shorthash
        self.cached_checksum = None
        self.optimizer_state_dict = None

    def checksum(self) -> str:
        return self.shorthash


class EmbeddingDatabase:
    """A1111's `embedding_db` over the App's embeddings folder (read on access, never stale)."""

    @property
    def embedding_dirs(self) -> dict[str, Any]:
        return {str(folder): folder for folder in shared.app().embeddings.folders}

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
        return {name: Embedding(e) for name, e in self._split()[0].items()}

    @property
    def skipped_embeddings(self) -> dict[str, Embedding]:
        """Embeddings made for another model family (A1111 lists them as skipped)."""
        return {name: Embedding(e) for name, e in self._split()[1].items()}

    @property
    def expected_shape(self) -> int:
        active = shared.app().models.active
        if active is None:
            return -1
        return sum(int(spec.model.config.hidden_size) for spec in active.sd.text_encoders)

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


class StableDiffusionModelHijack:
    fixes = None
    layers = None
    circular_enabled = False
    optimization_method = None

    def __init__(self) -> None:
        self.comments: list[str] = []
        self.extra_generation_params: dict[str, Any] = {}
        self.embedding_db = EmbeddingDatabase()

    @property
    def clip(self) -> Any:
        active = shared.app().models.active
        if active is None:
            return None
        from modules.sd_models import model_view

        return model_view(active).cond_stage_model

    def get_prompt_lengths(self, text: str) -> tuple[int, int]:
        """(token count, token limit) of a prompt: 5 tokens -> (5, 75), 80 -> (80, 150)."""
        return shared.app().text.count_tokens(text)

    def hijack(self, m: Any = None) -> None:
        """A1111 patches the model here; Sumi's model needs no patching."""

    def undo_hijack(self, m: Any = None) -> None:
        """Nothing to undo (see `hijack`)."""

    def redo_hijack(self, m: Any = None) -> None:
        """Nothing to redo (see `hijack`)."""

    def apply_optimizations(self, option: Any = None) -> None:
        """Sumi always uses PyTorch scaled-dot-product attention (xformers with --xformers)."""

    def convert_sdxl_to_ssd(self, m: Any = None) -> None:
        raise NotImplementedError("Sumi does not convert SDXL models to SSD-1B")

    def apply_circular(self, enable: bool) -> None:
        self.circular_enabled = enable

    def clear_comments(self) -> None:
        self.comments = []
        self.extra_generation_params = {}


model_hijack = StableDiffusionModelHijack()


def apply_optimizations(option: Any = None) -> str:
    return "sdp"


def undo_optimizations() -> None:
    """Nothing to undo: Sumi does not replace attention functions."""


def list_optimizers() -> None:
    """A1111 lists cross-attention optimizations; Sumi has one (SDPA)."""


def fix_checkpoint() -> None:
    """A1111 compatibility no-op (it was already empty there)."""
