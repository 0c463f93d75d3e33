"""Prompt text for the UI: the token counters' `N/75` next to the prompt boxes."""

from __future__ import annotations

import logging
from typing import Any

from modules.sumi.engine.text.chunks import ChunkedPrompt, chunk_prompt, no_parse
from modules.sumi.engine.text.encoder import Conditioning, encode_prompts
from modules.sumi.engine.text.prompt_syntax import attention_fragments
from modules.sumi.engine.text.token_count import count_tokens
from modules.sumi.engine.text.tokenizer import get_tokenizer
from modules.sumi.services.models.manager import ModelManager
from modules.sumi.services.networks.embeddings import EmbeddingDatabase
from modules.sumi.services.settings.options import Options

log = logging.getLogger(__name__)


class TextService:
    def __init__(self, models: ModelManager, embeddings: EmbeddingDatabase, options: Options) -> None:
        self.models = models
        self.embeddings = embeddings
        self.options = options
        self._count_hook: tuple[Any, Any] | None = None  # (embeddings view, its hook) for count_tokens

    def count_tokens(self, text: str, steps: int = 20, *, negative: bool = False) -> tuple[int, int]:
        """What the prompt boxes' token counters show: (tokens, limit) as A1111's `N/75`, `N/150`, ...
        The negative prompt is not split at AND (A1111 never splits it). Never loads a model: with
        none loaded the bundled CLIP tokenizer counts."""
        active = self.models.active
        tokenizer = active.sd.text_encoders[0].tokenizer if active else get_tokenizer()
        o = self.options
        return count_tokens(
            tokenizer,
            text,
            steps,
            comma_padding_backtrack=int(o.comma_padding_backtrack),
            emphasis=o.emphasis,
            is_positive=not negative,
            find_embedding=self._embedding_finder(active.sd) if active else None,
        )

    def tokenize_line(self, line: str, model: Any) -> ChunkedPrompt:
        """A1111's `tokenize_line` for `model`'s first tokenizer: the chunks of one prompt line as the
        text encoder gets them (emphasis parsed, BREAK and comma back-tracking applied, embeddings as
        their vectors) and A1111's token count (75 per chunk before the last, then its tokens)."""
        o = self.options
        return chunk_prompt(
            model.text_encoders[0].tokenizer,
            line,
            parse=no_parse if o.emphasis == "None" else attention_fragments,
            comma_padding_backtrack=int(o.comma_padding_backtrack),
            find_embedding=self._embedding_finder(model),
        )

    def learned_conditioning(self, texts: list[str], model: Any) -> Conditioning:
        """LDM's `get_learned_conditioning`: `texts` encoded by `model`'s text encoders as a job encodes
        its prompts (emphasis, clip skip, BREAK, comma back-tracking, the embeddings)."""
        o = self.options
        return encode_prompts(
            model.text_encoders,
            list(texts),
            int(o.CLIP_stop_at_last_layers),  # as a job reads it
            emphasis=o.emphasis,
            parse=attention_fragments,
            comma_padding_backtrack=int(o.comma_padding_backtrack),
            token_override=self.embeddings.for_model(model).hook(),
        )

    def _embedding_finder(self, model: Any) -> Any:
        """The counter's `find_embedding`: an embedding counts as its vectors, as in A1111 (None when
        the embeddings cannot be listed). One hook per embeddings view, so its name index is reused."""
        try:
            view = self.embeddings.for_model(model)
        except Exception as exc:  # the counter is a hint; a broken folder must not break typing
            log.warning("token counter: embeddings not counted: %s", exc)
            return None
        cached = self._count_hook
        if cached is None or cached[0] is not view:
            cached = self._count_hook = (view, view.hook())
        return cached[1].finder(model.text_encoders[0])
