"""Turning tag probabilities into a prompt, with A1111's DeepDanbooru options: a score threshold,
alphabetical or best-first order, spaces or underscores, escaped brackets, tags to leave out, and
`(tag:0.873)` ranks. `rating:*` tags (the picture's rating, not its content) are never written."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SPECIAL = re.compile(r"([\\()])")  # characters the prompt parser reads as emphasis or escapes


@dataclass(frozen=True)
class TagOptions:
    threshold: float = 0.5  # interrogate_deepbooru_score_threshold
    sort_alpha: bool = True  # deepbooru_sort_alpha (else best first)
    use_spaces: bool = True  # deepbooru_use_spaces (else underscores)
    escape: bool = True  # deepbooru_escape
    filter_tags: str = ""  # deepbooru_filter_tags: comma-separated
    ranks: bool = False  # interrogate_return_ranks


def format_tags(tags: Sequence[str], probabilities: Sequence[float], options: TagOptions) -> str:
    """The tags scoring at least the threshold, as one comma-separated prompt."""
    scores = {
        tag: float(p)
        for tag, p in zip(tags, probabilities, strict=True)
        if float(p) >= options.threshold and not tag.startswith("rating:")
    }
    order = sorted(scores) if options.sort_alpha else sorted(scores, key=lambda t: -scores[t])
    left_out = {t.strip().replace(" ", "_") for t in options.filter_tags.split(",")}
    return ", ".join(_written(tag, scores[tag], options) for tag in order if tag not in left_out)


def _written(tag: str, score: float, options: TagOptions) -> str:
    if options.use_spaces:
        tag = tag.replace("_", " ")
    if options.escape:
        tag = _SPECIAL.sub(r"\\\1", tag)
    return f"({tag}:{score:.3f})" if options.ranks else tag
