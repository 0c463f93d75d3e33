"""A1111's `modules.prompt_parser`, the names extensions import, over `modules.sumi.engine.text.prompt_syntax`.

The parsing functions return what A1111 v1.10.1 returns (see docs/prompt-syntax.md for the few inputs
where A1111 raises or is not deterministic). The functions that encode text with a model
(`get_learned_conditioning`, `get_multicond_learned_conditioning`) call the model's
`get_learned_conditioning`, which encodes as Sumi's jobs do; `reconstruct_cond_batch`,
`reconstruct_multicond_batch` and `stack_conds` pick and stack what they made, as A1111's.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modules.sumi.engine.text import prompt_syntax
from modules.sumi.engine.text.prompt_syntax import (
    get_learned_conditioning_prompt_schedules,
    parse_prompt_attention,
    schedule_grammar_parser,
)
from modules.sumi.services.jobs import a1111_sampler

__all__ = [
    "ComposableScheduledPromptConditioning",
    "DictWithShape",
    "MulticondLearnedConditioning",
    "ScheduledPromptConditioning",
    "SdConditioning",
    "get_learned_conditioning",
    "get_learned_conditioning_prompt_schedules",
    "get_multicond_learned_conditioning",
    "get_multicond_prompt_list",
    "parse_prompt_attention",
    "reconstruct_cond_batch",
    "reconstruct_multicond_batch",
    "stack_conds",
    "re_AND",
    "re_attention",
    "re_break",
    "re_weight",
    "scheduled_conditioning_at_step",
]

re_attention = prompt_syntax.ATTENTION_TOKEN
re_break = prompt_syntax.BREAK_PATTERN
re_AND = prompt_syntax.AND_PATTERN
re_weight = prompt_syntax.SUBPROMPT_WEIGHT_PATTERN

ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    """Prompts for the text encoder, plus whether they are negative and the image size (SDXL uses it).

    Attributes not given are taken from `copy_from` (by default `prompts` itself, if it has them).
    """

    def __init__(
        self,
        prompts: Sequence[str],
        is_negative_prompt: bool = False,
        width: int | None = None,
        height: int | None = None,
        copy_from: Any = None,
    ) -> None:
        super().__init__(prompts)
        source = prompts if copy_from is None else copy_from
        self.is_negative_prompt = is_negative_prompt or getattr(source, "is_negative_prompt", False)
        self.width = width or getattr(source, "width", None)
        self.height = height or getattr(source, "height", None)


@dataclass(eq=False)
class ComposableScheduledPromptConditioning:
    """One AND part: its schedule of conditionings and its weight."""

    schedules: list[ScheduledPromptConditioning]
    weight: float = 1.0


@dataclass(eq=False)
class MulticondLearnedConditioning:
    """Per prompt of a batch, its AND parts; `shape` is `(batch size,)` (samplers read it)."""

    shape: tuple
    batch: list[list[ComposableScheduledPromptConditioning]]


class DictWithShape(dict):
    """SDXL conditioning (`crossattn`, `vector`, ...) with the `shape` of its cross-attention tensor."""

    def __init__(self, x: dict, shape: Any = None) -> None:
        super().__init__(x)

    @property
    def shape(self) -> Any:
        return self["crossattn"].shape


def get_multicond_prompt_list(
    prompts: Sequence[str],
) -> tuple[list[list[tuple[int, float]]], SdConditioning, dict[str, int]]:
    """Split prompts at AND; the flat list is an `SdConditioning` carrying `prompts`' attributes."""
    res_indexes, flat, index_of = prompt_syntax.get_multicond_prompt_list(prompts)
    return res_indexes, SdConditioning(flat, copy_from=prompts), index_of


# Jobs read their AND parts through whatever `get_multicond_prompt_list` is when a batch starts, so an
# extension that replaces it (neutral-prompt) changes the job (services/jobs/a1111_sampler.py).
a1111_sampler.use_prompt_lister(lambda: get_multicond_prompt_list, get_multicond_prompt_list)


def scheduled_conditioning_at_step(
    schedules: Sequence[ScheduledPromptConditioning], current_step: int
) -> ScheduledPromptConditioning:
    """The first entry with `current_step <= end_at_step` (A1111 counts steps from 0 here)."""
    for entry in schedules:
        if current_step <= entry.end_at_step:
            return entry
    return schedules[0]


def get_learned_conditioning(
    model: Any,
    prompts: Sequence[str],
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list[ScheduledPromptConditioning]]:
    """Per prompt, its schedule (`[from:to:when]` edits) as `ScheduledPromptConditioning(end_at_step,
    cond)`, each text encoded by `model.get_learned_conditioning` (one (77*k, D) tensor, or SDXL's dict
    of rows); a prompt repeated in the list is encoded once."""
    schedules = get_learned_conditioning_prompt_schedules(prompts, steps, hires_steps, use_old_scheduling)
    done: dict[str, list[ScheduledPromptConditioning]] = {}
    result = []
    for prompt, schedule in zip(prompts, schedules, strict=True):
        if prompt not in done:
            texts = SdConditioning([str(text) for _, text in schedule], copy_from=prompts)
            conds = model.get_learned_conditioning(texts)
            done[prompt] = [
                ScheduledPromptConditioning(end, _row_of(conds, i)) for i, (end, _) in enumerate(schedule)
            ]
        result.append(done[prompt])
    return result


def _row_of(conds: Any, i: int) -> Any:
    return {key: value[i] for key, value in conds.items()} if isinstance(conds, dict) else conds[i]


def get_multicond_learned_conditioning(
    model: Any,
    prompts: Sequence[str],
    steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> MulticondLearnedConditioning:
    """The prompts split at AND, each part's schedule encoded, with its weight."""
    indexes, flat, _ = get_multicond_prompt_list(prompts)
    learned = get_learned_conditioning(model, flat, steps, hires_steps, use_old_scheduling)
    batch = [
        [ComposableScheduledPromptConditioning(learned[i], weight) for i, weight in parts]
        for parts in indexes
    ]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=batch)


def _entry_at(schedules: Sequence[ScheduledPromptConditioning], current_step: int) -> Any:
    """The cond in force at `current_step` (the first entry past the end, as A1111)."""
    for entry in schedules:
        if current_step <= entry.end_at_step:
            return entry.cond
    return schedules[0].cond


def reconstruct_cond_batch(c: Sequence[Sequence[ScheduledPromptConditioning]], current_step: int) -> Any:
    """The batch's conds at `current_step`, stacked: (B, 77*k, D), or a `DictWithShape` for SDXL."""
    picked = [_entry_at(schedules, current_step) for schedules in c]
    if isinstance(picked[0], dict):
        return DictWithShape({key: torch.stack([p[key] for p in picked]) for key in picked[0]})
    return torch.stack(picked)


def stack_conds(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Stack (tokens, D) conds of different lengths, the shorter repeating their last vector (A1111)."""
    tokens = max(t.shape[0] for t in tensors)
    padded = [
        t if t.shape[0] == tokens else torch.vstack([t, t[-1:].repeat(tokens - t.shape[0], 1)])
        for t in tensors
    ]
    return torch.stack(padded)


def reconstruct_multicond_batch(c: MulticondLearnedConditioning, current_step: int) -> tuple[list, Any]:
    """(conds_list, tensor): per image its `(row, weight)` pairs, and every AND part's cond at
    `current_step` stacked (lengths evened by `stack_conds`)."""
    tensors: list[Any] = []
    conds_list = []
    for parts in c.batch:
        rows = []
        for part in parts:
            rows.append((len(tensors), part.weight))
            tensors.append(_entry_at(part.schedules, current_step))
        conds_list.append(rows)
    if isinstance(tensors[0], dict):
        return conds_list, DictWithShape({key: stack_conds([t[key] for t in tensors]) for key in tensors[0]})
    return conds_list, stack_conds(tensors)


def __getattr__(name: str) -> Any:
    # A1111's lark parser, built on first use: extensions that walk its parse trees get the same trees.
    if name == "schedule_parser":
        return schedule_grammar_parser()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
