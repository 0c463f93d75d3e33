"""The prompt token counter A1111 shows above each prompt box ("27/75").

It counts what the text encoder will see: extra-network tags removed, the positive prompt split at AND,
every prompt-editing/alternation text of the schedule for `steps`, emphasis brackets parsed, BREAK and
comma back-tracking applied. The count shown is the longest of those texts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from transformers import CLIPTokenizer

from modules.sumi.engine.text.chunks import (
    CHUNK_LENGTH,
    EmbeddingFinder,
    Fragment,
    Parser,
    SpecialIds,
    chunk_fragments,
    is_break,
    no_parse,
    tokenize_fragments,
)
from modules.sumi.engine.text.prompt_syntax import (
    attention_fragments,
    get_learned_conditioning_prompt_schedules,
    get_multicond_prompt_list,
    schedule_entries,
)

EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")
"""`<lora:name:0.8>` and friends: removed before counting, as A1111's counter does."""


def count_tokens(
    tokenizer: CLIPTokenizer,
    text: str,
    steps: int = 20,
    *,
    comma_padding_backtrack: int = 20,
    emphasis: str = "Original",
    is_positive: bool = True,
    find_embedding: EmbeddingFinder | None = None,
) -> tuple[int, int]:
    """`(tokens, limit)`: the largest token count over the prompt's texts and the chunk limit it needs.

    `limit` is a multiple of 75 (75 for an empty prompt). A negative prompt (`is_positive=False`) is not
    split at AND, as in A1111. Pass `find_embedding` to count textual-inversion vectors as the encoder
    does; without it an embedding's name counts as its text.
    """
    parse: Parser = no_parse if emphasis == "None" else attention_fragments
    parsed = [parse(prompt) for prompt in schedule_texts(text, steps, is_positive=is_positive)]
    token_lists = _tokenize_once(tokenizer, parsed)
    ids = SpecialIds.of(tokenizer)
    count = max(
        chunk_fragments(
            fragments,
            token_lists(fragments),
            ids,
            comma_padding_backtrack=comma_padding_backtrack,
            find_embedding=find_embedding,
        ).token_count
        for fragments in parsed
    )
    return count, token_limit(count)


def _tokenize_once(
    tokenizer: CLIPTokenizer, parsed: list[list[Fragment]]
) -> Callable[[list[Fragment]], list[list[int]]]:
    """Tokenize every distinct fragment once: the texts of one schedule share most of theirs."""
    texts = list(dict.fromkeys(text for fragments in parsed for text, _ in fragments))
    ids_of = dict(zip(texts, tokenize_fragments(tokenizer, texts), strict=True))
    return lambda fragments: [[] if is_break(f) else ids_of[f[0]] for f in fragments]


def schedule_texts(text: str, steps: int, *, is_positive: bool = True) -> list[str]:
    """The distinct texts the encoder sees for `text` over `steps` steps, in order of appearance."""
    text = EXTRA_NETWORK_TAG.sub("", text)
    subprompts = get_multicond_prompt_list([text])[1] if is_positive else [text]
    schedules = get_learned_conditioning_prompt_schedules(subprompts, steps)
    return list(dict.fromkeys(shown for schedule in schedules for _, shown in schedule_entries(schedule)))


def token_limit(count: int) -> int:
    """A1111's "max" beside the count: whole 75-token chunks, at least one."""
    return math.ceil(max(count, 1) / CHUNK_LENGTH) * CHUNK_LENGTH
