"""A1111's prompt chunking: weighted text fragments -> 77-token CLIP chunks with per-token weights.

A prompt is first split into `(text, weight)` fragments by a parser (the A1111 attention parser plugs
in as `parse`). The fragments' tokens are concatenated into chunks of 75 tokens; each chunk becomes
`BOS + 75 tokens + EOS`, padded with EOS and, where the tokenizer's pad token differs from EOS
(OpenCLIP), with the pad id after the first EOS. The fragment `("BREAK", -1)` ends the current chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from transformers import CLIPTokenizer

from modules.sumi.engine.text.tokenizer import clean_text

CHUNK_LENGTH = 75
CHUNK_TOKENS = CHUNK_LENGTH + 2
PLACEHOLDER_ID = 0
"""Token id that holds an embedding vector's place until the vectors are substituted (as A1111)."""

Fragment = tuple[str, float]
Parser = Callable[[str], list[Fragment]]
BREAK_MARKER: Fragment = ("BREAK", -1.0)

_RE_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def split_break(prompt: str) -> list[Fragment]:
    """The parser used until the attention parser is plugged in: weight 1.0, `BREAK` as a word splits."""
    parts = _RE_BREAK.split(prompt)
    fragments: list[Fragment] = [(parts[0], 1.0)]
    for part in parts[1:]:
        fragments += [BREAK_MARKER, (part, 1.0)]
    return fragments


def no_parse(prompt: str) -> list[Fragment]:
    """Emphasis mode "None": the whole prompt is literal text, BREAK included."""
    return [(prompt, 1.0)]


def is_break(fragment: Fragment) -> bool:
    text, weight = fragment
    return text == "BREAK" and weight == -1


@dataclass(frozen=True)
class EmbeddingMatch:
    """A textual-inversion embedding found in the token stream.

    `vectors` ([n, D] for the encoder being chunked for) take n token slots; `length` is the number of
    prompt tokens (the embedding's name) they replace.
    """

    vectors: torch.Tensor
    length: int
    name: str = ""


EmbeddingFinder = Callable[[Sequence[int], int], EmbeddingMatch | None]
"""(fragment tokens, position) -> the embedding whose name starts at that position, or None."""


@dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    comma: int | None

    @classmethod
    def of(cls, tokenizer: CLIPTokenizer) -> SpecialIds:
        # transformers types ids for token lists too; one token (CLIP's are all set) has one int id
        comma = cast(int, tokenizer.convert_tokens_to_ids(",</w>"))
        return cls(
            bos=cast(int, tokenizer.bos_token_id),
            eos=cast(int, tokenizer.eos_token_id),
            pad=cast(int, tokenizer.pad_token_id),
            comma=None if comma == tokenizer.unk_token_id else comma,
        )


@dataclass
class PromptChunk:
    """77 token ids, their weights, and embeddings to substitute: (position in the 77, match)."""

    tokens: list[int]
    weights: list[float]
    fixes: list[tuple[int, EmbeddingMatch]] = field(default_factory=list)

    @property
    def multipliers(self) -> list[float]:
        """A1111's name for the weights (its `PromptChunk.multipliers`)."""
        return self.weights


@dataclass
class ChunkedPrompt:
    """The chunks of one prompt; `token_count` is A1111's count (75 per non-final chunk + the rest)."""

    chunks: list[PromptChunk]
    token_count: int


def finish_chunk(
    tokens: list[int], weights: list[float], fixes: list[tuple[int, EmbeddingMatch]], ids: SpecialIds
) -> PromptChunk:
    """Wrap at most 75 tokens as BOS + tokens + EOS padding (+ pad ids after the first EOS)."""
    padding = CHUNK_LENGTH - len(tokens)
    full = [ids.bos, *tokens, *([ids.eos] * padding), ids.eos]
    if ids.pad != ids.eos:
        first_eos = full.index(ids.eos)
        full[first_eos + 1 :] = [ids.pad] * (len(full) - first_eos - 1)
    full_weights = [1.0, *weights, *([1.0] * padding), 1.0]
    return PromptChunk(full, full_weights, [(pos + 1, match) for pos, match in fixes])


def empty_chunk(ids: SpecialIds) -> PromptChunk:
    """The chunk of an empty prompt, used to pad prompts to a common chunk count."""
    return finish_chunk([], [], [], ids)


class _ChunkBuilder:
    """A1111's `tokenize_line` loop, as a small state machine."""

    def __init__(self, ids: SpecialIds, comma_padding_backtrack: int, find: EmbeddingFinder | None):
        self.ids = ids
        self.backtrack = comma_padding_backtrack
        self.find = find
        self.chunks: list[PromptChunk] = []
        self.token_count = 0
        self._reset()

    def _reset(self) -> None:
        self.tokens: list[int] = []
        self.weights: list[float] = []
        self.fixes: list[tuple[int, EmbeddingMatch]] = []
        self.last_comma = -1

    def emit(self, is_last: bool = False) -> None:
        self.token_count += len(self.tokens) if is_last else CHUNK_LENGTH
        self.chunks.append(finish_chunk(self.tokens, self.weights, self.fixes, self.ids))
        self._reset()

    def finish(self) -> ChunkedPrompt:
        if self.tokens or not self.chunks:
            self.emit(is_last=True)
        return ChunkedPrompt(self.chunks, self.token_count)

    def add(self, tokens: Sequence[int], weight: float) -> None:
        position = 0
        while position < len(tokens):
            self._before_token(tokens[position])
            position += self._append(tokens, position, weight)

    def _before_token(self, token: int) -> None:
        if token == self.ids.comma:
            self.last_comma = len(self.tokens)
        elif self._should_backtrack():
            self._move_after_comma()
        if len(self.tokens) == CHUNK_LENGTH:
            self.emit()

    def _should_backtrack(self) -> bool:
        return (
            self.backtrack != 0
            and len(self.tokens) == CHUNK_LENGTH
            and self.last_comma != -1
            and len(self.tokens) - self.last_comma <= self.backtrack
        )

    def _move_after_comma(self) -> None:
        # Unlike A1111, embeddings after the comma move with their placeholders.
        cut = self.last_comma + 1
        tokens, weights = self.tokens[cut:], self.weights[cut:]
        fixes = [(pos - cut, match) for pos, match in self.fixes if pos >= cut]
        self.tokens, self.weights = self.tokens[:cut], self.weights[:cut]
        self.fixes = [(pos, match) for pos, match in self.fixes if pos < cut]
        self.emit()
        self.tokens, self.weights, self.fixes = tokens, weights, fixes

    def _append(self, tokens: Sequence[int], position: int, weight: float) -> int:
        """Append the token (or embedding) at `position`; return how many prompt tokens it used."""
        match = self.find(tokens, position) if self.find is not None else None
        if match is None:
            self.tokens.append(tokens[position])
            self.weights.append(weight)
            return 1
        count = int(match.vectors.shape[0])
        if count > CHUNK_LENGTH:
            raise ValueError(
                f"embedding {match.name!r} has {count} vectors; at most {CHUNK_LENGTH} fit a chunk"
            )
        if len(self.tokens) + count > CHUNK_LENGTH:
            self.emit()
        self.fixes.append((len(self.tokens), match))
        self.tokens += [PLACEHOLDER_ID] * count
        self.weights += [weight] * count
        return max(match.length, 1)


def tokenize_fragments(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, without BOS/EOS or any length limit."""
    if not texts:
        return []
    cleaned = [clean_text(text) for text in texts]
    return tokenizer(cleaned, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def chunk_fragments(
    fragments: Sequence[Fragment],
    token_lists: Sequence[Sequence[int]],
    ids: SpecialIds,
    *,
    comma_padding_backtrack: int = 20,
    find_embedding: EmbeddingFinder | None = None,
) -> ChunkedPrompt:
    """Chunk already tokenized fragments (`token_lists[i]` belongs to `fragments[i]`)."""
    builder = _ChunkBuilder(ids, comma_padding_backtrack, find_embedding)
    for fragment, tokens in zip(fragments, token_lists, strict=True):
        if is_break(fragment):
            builder.emit()
        else:
            builder.add(tokens, fragment[1])
    return builder.finish()


def chunk_prompt(
    tokenizer: CLIPTokenizer,
    prompt: str,
    *,
    parse: Parser = split_break,
    comma_padding_backtrack: int = 20,
    find_embedding: EmbeddingFinder | None = None,
) -> ChunkedPrompt:
    """Parse, tokenize and chunk one prompt for one tokenizer."""
    fragments = parse(prompt)
    token_lists = tokenize_fragments(tokenizer, ["" if is_break(f) else f[0] for f in fragments])
    return chunk_fragments(
        fragments,
        token_lists,
        SpecialIds.of(tokenizer),
        comma_padding_backtrack=comma_padding_backtrack,
        find_embedding=find_embedding,
    )
