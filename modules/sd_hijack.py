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

from typing import Any

from modules import shared
from modules.textual_inversion.textual_inversion import Embedding, EmbeddingDatabase

__all__ = ["Embedding", "EmbeddingDatabase", "StableDiffusionModelHijack", "model_hijack"]


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
