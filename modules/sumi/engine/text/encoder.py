"""Text conditioning: prompts -> CLIP hidden states the UNet attends to (A1111 semantics).

Each distinct prompt is chunked (see `chunks.py`), every chunk is encoded on its own and the chunks
are concatenated along the token axis, giving `[B, 77 * k, D]`. All prompts of one call share `k`
(shorter ones get empty-prompt chunks, as A1111 pads a batch), and chunk i of all prompts is encoded
as one batch so that "Original" emphasis normalises over that batch, as in A1111.

Clip skip: the hidden state used is `hidden_states[spec.layer - (clip_skip - 1)]`, followed by the
final layer norm when `spec.final_norm`. For SD1 (layer -1, final norm) clip skip 1 is the last
hidden state after the final norm and clip skip n is `hidden_states[-n]` + final norm, as in A1111
(diffusers' `clip_skip=n - 1`). SDXL specs (layer -2, no final norm) read `hidden_states[-1 - n]`,
matching diffusers' SDXL `clip_skip=n - 1`; A1111 ignores clip skip for SDXL and SD2 unless its
`sdxl_clip_l_skip` option is on, so callers wanting that pass clip_skip=1 there.
The pooled output (SDXL) comes from the last layer of the first chunk and is never emphasised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from modules.sumi.engine.host_values import send
from modules.sumi.engine.model import TextEncoderSpec
from modules.sumi.engine.text.chunks import (
    CHUNK_TOKENS,
    EmbeddingFinder,
    EmbeddingMatch,
    Parser,
    PromptChunk,
    SpecialIds,
    chunk_prompt,
    empty_chunk,
    no_parse,
    split_break,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")
MAX_ROWS_PER_FORWARD = 32

TokenOverride = Callable[[TextEncoderSpec, Sequence[int], int], EmbeddingMatch | None]
"""Textual-inversion hook: (encoder, fragment tokens, position) -> vectors that replace the tokens there."""


@dataclass
class Conditioning:
    """`context` [B, 77*k, D] for cross-attention; `pooled` [B, P] (SDXL only)."""

    context: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunk_count(self) -> int:
        return self.context.shape[1] // CHUNK_TOKENS

    def zeros_like(self) -> Conditioning:
        """SDXL's conditioning for an all-empty negative prompt (A1111 and diffusers zero it)."""
        pooled = None if self.pooled is None else torch.zeros_like(self.pooled)
        return Conditioning(torch.zeros_like(self.context), pooled)


def encode_prompts(
    text_encoders: Sequence[TextEncoderSpec],
    prompts: Sequence[str],
    clip_skip: int = 1,
    *,
    emphasis: str = "Original",
    chunk_count: int | None = None,
    parse: Parser | None = None,
    token_override: TokenOverride | None = None,
    comma_padding_backtrack: int = 20,
    grad: bool = False,
) -> Conditioning:
    """Encode `prompts` (one row each, in order) with all `text_encoders`, features concatenated.

    `parse` splits a prompt into (text, weight) fragments (default: weight 1, BREAK splits); it is not
    called in emphasis mode "None". `chunk_count` is a minimum number of chunks (to match cond and
    uncond); the result has at least the chunks its longest prompt needs. `grad` keeps the autograd
    graph (training: textual-inversion vectors or text-encoder adapters receive gradients).
    """
    _check_arguments(text_encoders, prompts, emphasis)
    parser = no_parse if emphasis == "None" else (parse or split_break)
    unique = list(dict.fromkeys(prompts))
    grids = [
        [
            chunk_prompt(
                spec.tokenizer,
                prompt,
                parse=parser,
                comma_padding_backtrack=comma_padding_backtrack,
                find_embedding=_finder(spec, token_override),
            ).chunks
            for prompt in unique
        ]
        for spec in text_encoders
    ]
    count = max([chunk_count or 1] + [len(chunks) for grid in grids for chunks in grid])
    context, pooled = _encode_all(text_encoders, grids, count, clip_skip, emphasis, grad)
    position = {prompt: i for i, prompt in enumerate(unique)}
    rows = torch.tensor([position[prompt] for prompt in prompts], device=context.device)
    return Conditioning(context[rows], None if pooled is None else pooled[rows])


def _encode_all(
    text_encoders: Sequence[TextEncoderSpec],
    grids: list[list[list[PromptChunk]]],
    count: int,
    clip_skip: int,
    emphasis: str,
    grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode every encoder's chunk grid padded to `count` chunks; concatenate along the features."""
    contexts: list[torch.Tensor] = []
    pooled: torch.Tensor | None = None
    for spec, grid in zip(text_encoders, grids, strict=True):
        empty = empty_chunk(SpecialIds.of(spec.tokenizer))
        padded = [chunks + [empty] * (count - len(chunks)) for chunks in grid]
        context, spec_pooled = _encode_with(spec, padded, clip_skip, emphasis, grad)
        contexts.append(context)
        if spec.pooled and pooled is None:
            pooled = spec_pooled
    first = contexts[0]
    context = torch.cat([c.to(device=first.device, dtype=first.dtype) for c in contexts], dim=-1)
    return context, None if pooled is None else pooled.to(first.device)


def pad_to_same_length(
    a: Conditioning, b: Conditioning, empty: Conditioning | None = None
) -> tuple[Conditioning, Conditioning]:
    """Give `a` and `b` the same token length by extending the shorter one.

    With `empty` (the encoding of "" with the same model) the shorter one gets copies of it appended,
    as A1111's `pad_cond_uncond`; without it, its last token vector is repeated, as A1111 does for AND
    sub-prompts and its legacy `pad_cond_uncond_v0` (which also truncates; we never truncate).
    """
    length = max(a.context.shape[1], b.context.shape[1])
    return _pad(a, length, empty), _pad(b, length, empty)


def _pad(cond: Conditioning, length: int, empty: Conditioning | None) -> Conditioning:
    context = cond.context
    missing = length - context.shape[1]
    if missing == 0:
        return cond
    if empty is None:
        filler = context[:, -1:].expand(-1, missing, -1)
    else:
        unit = empty.context[:1].to(context)
        if missing % unit.shape[1]:
            raise ValueError(f"cannot pad {missing} tokens with {unit.shape[1]}-token empty chunks")
        filler = unit.repeat(context.shape[0], missing // unit.shape[1], 1)
    return Conditioning(torch.cat([context, filler], dim=1), cond.pooled)


def _check_arguments(text_encoders: Sequence[TextEncoderSpec], prompts: Sequence[str], emphasis: str) -> None:
    if not text_encoders:
        raise ValueError("no text encoders given")
    if not prompts:
        raise ValueError("no prompts given")
    if emphasis not in EMPHASIS_MODES:
        raise ValueError(f"unknown emphasis mode {emphasis!r}; expected one of {', '.join(EMPHASIS_MODES)}")


def _finder(spec: TextEncoderSpec, token_override: TokenOverride | None) -> EmbeddingFinder | None:
    if token_override is None:
        return None
    return lambda tokens, position: token_override(spec, tokens, position)


def _encode_with(
    spec: TextEncoderSpec, grid: list[list[PromptChunk]], clip_skip: int, emphasis: str, grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode prompts x chunks with one encoder: context [U, 77*k, D] and pooled [U, P] (first chunk)."""
    prompt_count, count = len(grid), len(grid[0])
    rows = [grid[p][c] for c in range(count) for p in range(prompt_count)]  # chunk-major
    hidden, pooled = _run_encoder(spec, rows, clip_skip, grad)
    weights = torch.tensor([row.weights for row in rows], dtype=torch.float32)  # on the host: read there
    per_chunk = [
        apply_emphasis(z, w, emphasis)
        for z, w in zip(hidden.split(prompt_count), weights.split(prompt_count), strict=True)
    ]
    context = torch.cat(per_chunk, dim=1)
    first_pooled = pooled[:prompt_count] if pooled is not None and spec.pooled else None
    return context, first_pooled


def apply_emphasis(z: torch.Tensor, weights: torch.Tensor, emphasis: str) -> torch.Tensor:
    """Weight each token's vector (z [N, 77, D], weights [N, 77]); "Original" then restores the mean.

    The mean is over the whole batch of chunks, as A1111 does (prompts encoded together affect
    each other's scale).
    """
    if emphasis in ("Ignore", "None") or bool((weights == 1).all()):
        return z
    original = z.float()
    weighted = original * send(weights, original.device)[..., None]
    if emphasis == "Original":
        new_mean = weighted.mean()  # kept on the device: no host sync (a zero mean leaves the scale)
        weighted = weighted * torch.where(new_mean != 0, original.mean() / new_mean, new_mean.new_ones(()))
    return weighted.to(z.dtype)


def _run_encoder(
    spec: TextEncoderSpec, rows: list[PromptChunk], clip_skip: int, grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Hidden states [N, 77, D] (in the encoder's dtype) and pooled outputs [N, P] for N chunks."""
    parameter = next(spec.model.parameters())
    hidden_parts: list[torch.Tensor] = []
    pooled_parts: list[torch.Tensor] = []
    for start in range(0, len(rows), MAX_ROWS_PER_FORWARD):
        batch = rows[start : start + MAX_ROWS_PER_FORWARD]
        ids = torch.tensor([row.tokens for row in batch], dtype=torch.long, device=parameter.device)
        with torch.set_grad_enabled(grad), _substituted_embeddings(spec.model, batch):
            hidden, pooled = _forward(spec, ids, clip_skip)
        hidden_parts.append(hidden.to(parameter.dtype))
        if pooled is not None:
            pooled_parts.append(pooled.to(parameter.dtype))
    return torch.cat(hidden_parts), torch.cat(pooled_parts) if pooled_parts else None


def _forward(
    spec: TextEncoderSpec, ids: torch.Tensor, clip_skip: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    layer_count = spec.model.config.num_hidden_layers
    index = max(spec.layer - (max(clip_skip, 1) - 1), -(layer_count + 1))
    use_last = index == -1 and spec.final_norm
    out = spec.model(input_ids=ids, output_hidden_states=not use_last)
    if use_last:
        hidden = out.last_hidden_state
    else:
        hidden = out.hidden_states[index]
        if spec.final_norm:
            hidden = _final_layer_norm(spec.model)(hidden)
    pooled = None
    if spec.pooled:
        pooled = getattr(out, "text_embeds", None)
        if pooled is None:
            pooled = out.pooler_output
    return hidden, pooled


def _final_layer_norm(model: torch.nn.Module) -> torch.nn.Module:
    """CLIP's `final_layer_norm` (CLIPTextModelWithProjection holds it in a wrapped `text_model`)."""
    text_model: torch.nn.Module = getattr(model, "text_model", model)
    return text_model.get_submodule("final_layer_norm")


@contextmanager
def _substituted_embeddings(model: PreTrainedModel, rows: list[PromptChunk]) -> Iterator[None]:
    """Replace placeholder token embeddings by textual-inversion vectors for one forward pass."""
    fixes = [(row, position, match) for row, chunk in enumerate(rows) for position, match in chunk.fixes]
    if not fixes:
        yield
        return
    embedding = model.get_input_embeddings()

    def substitute(_module: torch.nn.Module, _args: tuple, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for row, position, match in fixes:
            vectors = match.vectors
            if vectors.shape[-1] != output.shape[-1]:
                raise ValueError(
                    f"embedding {match.name!r} has vectors of size {vectors.shape[-1]}, "
                    f"the text encoder expects {output.shape[-1]}"
                )
            output[row, position : position + vectors.shape[0]] = vectors.to(output)
        return output

    handle = embedding.register_forward_hook(substitute)
    try:
        yield
    finally:
        handle.remove()
