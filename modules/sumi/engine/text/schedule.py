"""Prompts over time: A1111 prompt editing, alternation and AND, encoded once per distinct text.

A job's conditioning is, per image, a list of AND parts (weight, schedule) for the positive prompt and
one schedule for the negative prompt. A schedule is a list of (end_at_step, conditioning row); the
denoiser picks, at model call `step` (counted from 0), the first entry with `step <= end_at_step`,
which reproduces A1111's off-by-one (`[a:b:3]` uses `a` for calls 0..3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch

from modules.sumi.engine.model import TextEncoderSpec
from modules.sumi.engine.text.encoder import Conditioning, TokenOverride, encode_prompts
from modules.sumi.engine.text.prompt_syntax import (
    get_learned_conditioning_prompt_schedules,
    get_multicond_prompt_list,
    parse_prompt_attention,
    schedule_entries,
)


@dataclass
class ScheduledCond:
    end_at_step: int
    cond: Conditioning  # one row: context [1, T, D], pooled [1, P] or None
    text: str


Schedule = list[ScheduledCond]


@dataclass
class ComposableCond:
    """One image's positive prompt: AND parts, each with its weight and schedule."""

    parts: list[tuple[float, Schedule]]


@dataclass
class PromptOptions:
    clip_skip: int = 1
    emphasis: str = "Original"
    comma_padding_backtrack: int = 20
    use_old_scheduling: bool = False
    zero_empty_negative: bool = False  # SDXL: an all-empty negative prompt is zeros (A1111, diffusers)
    pad_cond_uncond: bool = False  # A1111 opt: pad cond/uncond of unequal length with empty chunks
    token_override: TokenOverride | None = None  # textual inversion: embedding vectors for their names
    # Hires fix's second pass: the first pass's model calls; its schedules then span the hires pass
    # (A1111's `hires_steps`: whole numbers count from the start of the first pass, fractions from 1.0)
    first_pass_steps: int | None = None


@dataclass
class JobConditioning:
    conds: list[ComposableCond]  # per image
    unconds: list[Schedule]  # per image
    empty: Conditioning | None = None  # the encoding of "", when cond/uncond are padded to equal length

    def texts_at(self, step: int) -> list[list[str]]:
        """The positive texts each image uses at model call `step` (for tests and logs)."""
        return [[pick(schedule, step).text for _, schedule in c.parts] for c in self.conds]


def pick(schedule: Schedule, step: int) -> ScheduledCond:
    """The entry in force at model call `step`; past the end A1111 falls back to the first one."""
    for entry in schedule:
        if step <= entry.end_at_step:
            return entry
    return schedule[0]


def build(
    text_encoders: Sequence[TextEncoderSpec],
    prompts: Sequence[str],
    negative_prompts: Sequence[str],
    steps: int,
    options: PromptOptions,
) -> JobConditioning:
    """Parse AND parts and schedules for every image, encoding each distinct text exactly once."""
    parts_per_prompt, flat_prompts, _ = get_multicond_prompt_list(list(prompts))
    positive = _schedules(text_encoders, list(flat_prompts), steps, options, negative=False)
    negative = _schedules(text_encoders, list(negative_prompts), steps, options, negative=True)
    conds = [
        ComposableCond([(weight, positive[index]) for index, weight in parts]) for parts in parts_per_prompt
    ]
    return JobConditioning(conds, negative)


def _schedules(
    text_encoders: Sequence[TextEncoderSpec],
    prompts: list[str],
    steps: int,
    options: PromptOptions,
    negative: bool,
) -> list[Schedule]:
    """One schedule per prompt; all distinct texts are encoded in one batch (as A1111 does)."""
    plans = [
        schedule_entries(plan)
        for plan in (
            get_learned_conditioning_prompt_schedules(
                prompts, steps, use_old_scheduling=options.use_old_scheduling
            )
            if options.first_pass_steps is None
            else get_learned_conditioning_prompt_schedules(
                prompts, options.first_pass_steps, steps, options.use_old_scheduling
            )
        )
    ]
    texts = list(dict.fromkeys(text for plan in plans for _, text in plan))
    encoded = _encode(text_encoders, texts, options, negative)
    rows = {text: _row(encoded, i) for i, text in enumerate(texts)}
    return [[ScheduledCond(end, rows[text], text) for end, text in plan] for plan in plans]


def _encode(text_encoders, texts: list[str], options: PromptOptions, negative: bool) -> Conditioning:
    encoded = encode_prompts(
        text_encoders,
        texts,
        options.clip_skip,
        emphasis=options.emphasis,
        parse=_attention,
        comma_padding_backtrack=options.comma_padding_backtrack,
        token_override=options.token_override,
    )
    if negative and options.zero_empty_negative and not any(texts):
        return encoded.zeros_like()
    return encoded


def _attention(text: str) -> list[tuple[str, float]]:
    return [(str(t), float(w)) for t, w in parse_prompt_attention(text)]


def _row(cond: Conditioning, index: int) -> Conditioning:
    pooled = None if cond.pooled is None else cond.pooled[index : index + 1]
    return Conditioning(cond.context[index : index + 1], pooled)


def stack_rows(rows: Sequence[Conditioning]) -> Conditioning:
    """Rows of possibly different token lengths into one batch; shorter rows repeat their last token
    vector (A1111 does this for AND parts and for the rows of one batch)."""
    length = max(r.context.shape[1] for r in rows)
    contexts = [_extend(r.context, length) for r in rows]
    # the rows come from the same encoders: all have a pooled output or none has
    pooled = None if rows[0].pooled is None else torch.cat(cast(list[torch.Tensor], [r.pooled for r in rows]))
    return Conditioning(torch.cat(contexts), pooled)


def _extend(context: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - context.shape[1]
    if missing == 0:
        return context
    return torch.cat([context, context[:, -1:].expand(-1, missing, -1)], dim=1)
