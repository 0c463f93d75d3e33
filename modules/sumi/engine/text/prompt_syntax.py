"""A1111's prompt language without a model: emphasis, BREAK, prompt editing, alternation and AND.

The three public functions return what A1111 v1.10.1's `modules/prompt_parser.py` returns, value for
value (its doctests are the spec; see docs/prompt-syntax.md):

* `parse_prompt_attention(text)`: `(x)`, `[x]`, `(x:1.3)`, escapes and BREAK -> `[[text, weight], ...]`.
* `get_learned_conditioning_prompt_schedules(prompts, steps)`: `[from:to:when]` and `[a|b]` ->
  `[[end_step, text], ...]` per prompt.
* `get_multicond_prompt_list(prompts)`: `AND` and `:weight` -> sub-prompt indexes, texts and their index.

A1111 expands schedules with a lark Earley parse of `SCHEDULE_GRAMMAR`, which takes seconds for a long
prompt with brackets. `parse_schedule` scans the same language in linear time and reads a bracket group
that is well formed as structure, everything else as text; the tests hold it against the grammar.
Where a well-formed group touches stray brackets or colons (`[cat:dog:5]: photo`), the grammar is
ambiguous and A1111's choice changes with Python's hash seed from one start to the next; here the group
is always an edit. Where A1111 raises on odd input, these functions return a value instead (documented
where it happens).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import lark

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK_TEXT = "BREAK"
BREAK_WEIGHT = -1
"""The attention parser's BREAK marker is `["BREAK", -1]` (an int, as in A1111)."""

Segment = list  # [text: str, weight: float], a list because callers (and A1111's code) mutate it

# --------------------------------------------------------------------------------------------------
# Emphasis: (x) (x:1.3) [x] \( BREAK

ATTENTION_TOKEN = re.compile(
    r"""
    \\[()\[\]\\]              # \( \) \[ \] \\ : the character itself
    | \\                      # any other backslash is dropped
    | [(\[]                   # an opening bracket
    | :\s*([+-]?[.\d]+)\s*\)  # ":1.3)" closes a round bracket with that weight (the only group)
    | [)\]]                   # a closing bracket
    | [^\\()\[\]:]+           # text
    | :                       # a colon that is not a weight
    """,
    re.X,
)
BREAK_PATTERN = re.compile(r"\s*\bBREAK\b\s*", re.S)
"""A1111's `re_break`; `split_break` does the same split in linear time."""

_BREAK_WORD = re.compile(r"\bBREAK\b")


def parse_prompt_attention(text: str) -> list[Segment]:
    """Split `text` into `[text, weight]` segments, A1111's emphasis rules.

    `(x)` multiplies by 1.1, `[x]` by 1/1.1, `(x:W)` by W; unclosed brackets close at the end, stray
    closers are text; neighbours of equal weight merge; BREAK gives `["BREAK", -1]` (inside brackets
    that weight is multiplied too, so it is then just the word). An empty prompt is `[["", 1.0]]`.
    """
    parsed = _Emphasis()
    for match in ATTENTION_TOKEN.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token[0] == "\\":
            parsed.add(token[1:], 1.0)
        elif token == "(":
            parsed.round.append(len(parsed.weights))
        elif token == "[":
            parsed.square.append(len(parsed.weights))
        elif weight is not None and parsed.round:
            parsed.close_weighted(token, weight)
        elif token == ")" and parsed.round:
            parsed.scale(parsed.round.pop(), ROUND_MULTIPLIER)
        elif token == "]" and parsed.square:
            parsed.scale(parsed.square.pop(), SQUARE_MULTIPLIER)
        else:
            parsed.add_text(token)
    return parsed.segments()


def attention_fragments(text: str) -> list[tuple[str, float]]:
    """`parse_prompt_attention` as `(text, weight)` tuples: the `parse` argument of the text encoder."""
    return [(segment[0], segment[1]) for segment in parse_prompt_attention(text)]


def split_break(text: str) -> list[str]:
    """`BREAK_PATTERN.split(text)` without the regex's quadratic time on long runs of whitespace."""
    parts: list[str] = []
    start = 0
    for match in _BREAK_WORD.finditer(text):
        left, right = match.start(), match.end()
        while left > start and text[left - 1].isspace():  # str.isspace is exactly re's \s
            left -= 1
        while right < len(text) and text[right].isspace():
            right += 1
        parts.append(text[start:left])
        start = right
    parts.append(text[start:])
    return parts


class _Emphasis:
    """Segments so far (texts and weights side by side) and the positions where open brackets began."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.weights: list[float] = []
        self.round: list[int] = []
        self.square: list[int] = []

    def add(self, text: str, weight: float) -> None:
        self.texts.append(text)
        self.weights.append(weight)

    def add_text(self, text: str) -> None:
        """Plain text: BREAK splits it and leaves a marker between the parts."""
        parts = split_break(text)
        self.add(parts[0], 1.0)
        for part in parts[1:]:
            self.add(BREAK_TEXT, BREAK_WEIGHT)
            self.add(part, 1.0)

    def scale(self, start: int, multiplier: float) -> None:
        """Multiply every segment from `start` on (in order, as A1111 does: the float bits matter)."""
        self.weights[start:] = [weight * multiplier for weight in self.weights[start:]]

    def close_weighted(self, token: str, number: str) -> None:
        """Close a round bracket with the weight `number` (`token` is all of ":1.3)").

        A1111 raises ValueError where the number is no float (`(a:1.2.3)`); here it stays text and the
        bracket closes as a plain `)`.
        """
        start = self.round.pop()
        try:
            multiplier = float(number)
        except ValueError:
            self.add_text(token[:-1])
            multiplier = ROUND_MULTIPLIER
        self.scale(start, multiplier)

    def segments(self) -> list[Segment]:
        """Close what is still open (round brackets first), then merge neighbours of equal weight."""
        for start in self.round:
            self.scale(start, ROUND_MULTIPLIER)
        for start in self.square:
            self.scale(start, SQUARE_MULTIPLIER)
        if not self.texts:
            return [["", 1.0]]
        merged: list[Segment] = [[self.texts[0], self.weights[0]]]
        for text, weight in zip(self.texts[1:], self.weights[1:], strict=True):
            if merged[-1][1] == weight:
                merged[-1][0] += text
            else:
                merged.append([text, weight])
        return merged


# --------------------------------------------------------------------------------------------------
# Prompt editing [from:to:when] and alternation [a|b]

SCHEDULE_GRAMMAR = r"""
// A1111's prompt-editing language, in lark's Earley dialect; parse trees have A1111's shapes.
// Only `scheduled` and `alternate` change the text. Brackets and colons that form no group are STRAY
// text, which only the top level allows; a "|" outside an alternation fails the parse.
start: (prompt | STRAY+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
emphasized: LPAR prompt RPAR
    | LPAR prompt COLON prompt RPAR
    | LSQB prompt RSQB
scheduled: _LSQB [prompt _COLON] prompt _COLON [WHITESPACE] NUMBER [WHITESPACE] _RSQB
alternate: _LSQB prompt (_VBAR [prompt])+ _RSQB
plain: TEXT

TEXT: /(?:[^\\\[\]():|]|\\.)+/    // anything but brackets, colons and bars; a backslash escapes
STRAY: /[][():]/
WHITESPACE: /\s+/
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
COLON: ":"
_LSQB: "["
_RSQB: "]"
_COLON: ":"
_VBAR: "|"
%import common.SIGNED_NUMBER -> NUMBER
"""
"""The grammar A1111 parses with lark's Earley parser; `schedule_grammar_parser()` compiles it."""


@dataclass(frozen=True)
class Edit:
    """`[before:after:when]` (`before` is empty for `[after:when]`); `when` is the number as written."""

    before: tuple[Item, ...]
    after: tuple[Item, ...]
    when: str


@dataclass(frozen=True)
class Alternation:
    """`[a|b|...]`: step k (1-based) shows option (k - 1) mod n."""

    options: tuple[tuple[Item, ...], ...]


Item = str | Edit | Alternation
"""A parsed prompt is a sequence of items: text kept as written, edits and alternations."""

_SCHEDULE_TOKEN = re.compile(r"\\[^\n]|\\|[][():|]|[^][():|\\]+")
_WHEN = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*")
_CLOSER = {"(": ")", "[": "]"}


@dataclass
class _Group:
    """An open bracket while scanning: its content so far, split at `:` and `|`."""

    opener: str
    parts: list[list[Item]] = field(default_factory=lambda: [[]])
    separators: list[str] = field(default_factory=list)

    def close(self) -> list[Item] | None:
        """The items this group stands for, or None if A1111's grammar has no rule for it."""
        if self.opener == "(":
            return self._verbatim(")") if self.separators in ([], [":"]) else None
        if not self.separators:
            return self._verbatim("]")
        if set(self.separators) == {"|"}:
            return [Alternation(tuple(tuple(part) for part in self.parts))]
        if len(self.separators) <= 2 and "|" not in self.separators:
            return self._edit()
        return None

    def flatten(self) -> list[Item]:
        """The group as text: its brackets were no structure after all."""
        items: list[Item] = [self.opener]
        for part, separator in zip(self.parts, [*self.separators, ""], strict=True):
            items += [*part, separator]
        return items

    def _verbatim(self, closer: str) -> list[Item]:
        return [*self.flatten(), closer]

    def _edit(self) -> list[Item] | None:
        *prompts, when = self.parts
        number = _WHEN.fullmatch(when[0]) if len(when) == 1 and isinstance(when[0], str) else None
        if number is None:
            return None
        before = tuple(prompts[0]) if len(prompts) == 2 else ()
        return [Edit(before, tuple(prompts[-1]), number.group(1))]


class _ScheduleScanner:
    """Builds the items of a prompt left to right; a stack holds the brackets still open."""

    def __init__(self) -> None:
        self.top: list[Item] = []
        self.open: list[_Group] = []

    def feed(self, token: str) -> bool:
        """Take one token; False where the grammar rejects the prompt."""
        kind = token[0]
        if kind in "([":
            self.open.append(_Group(kind))
        elif kind in ":|":
            return self._separator(kind)
        elif kind in ")]":
            return self._closer(kind)
        elif token == "\\":  # a backslash at the end or before a newline escapes nothing
            return False
        else:
            _add(self._items(), [token])
        return True

    def finish(self) -> tuple[Item, ...] | None:
        return tuple(self.top) if self._unwind() else None

    def _items(self) -> list[Item]:
        return self.open[-1].parts[-1] if self.open else self.top

    def _separator(self, kind: str) -> bool:
        if self.open:
            self.open[-1].parts.append([])
            self.open[-1].separators.append(kind)
            return True
        _add(self.top, [kind])
        return kind == ":"  # a "|" outside brackets fails the whole prompt

    def _closer(self, kind: str) -> bool:
        if self.open and _CLOSER[self.open[-1].opener] == kind:
            items = self.open[-1].close()
            if items is not None:
                self.open.pop()
                _add(self._items(), items)
                return True
        # A group that forms no rule is text, so every group around it is malformed too.
        if not self._unwind():
            return False
        _add(self.top, [kind])
        return True

    def _unwind(self) -> bool:
        """Turn every open group into text at the top level; False if that leaves a `|` there."""
        for group in self.open:
            if "|" in group.separators:
                return False
            _add(self.top, group.flatten())
        self.open.clear()
        return True


def _add(items: list[Item], new: Iterable[Item]) -> None:
    """Append, joining neighbouring text."""
    for item in new:
        if isinstance(item, str) and items and isinstance(items[-1], str):
            items[-1] += item
        elif item != "":
            items.append(item)


def parse_schedule(text: str) -> tuple[Item, ...] | None:
    """The prompt as items, or None where A1111's grammar rejects it.

    Rejected are a `|` outside any alternation and a backslash at the end or before a newline; A1111
    then uses the prompt as written for every step.
    """
    scanner = _ScheduleScanner()
    for match in _SCHEDULE_TOKEN.finditer(text):
        if not scanner.feed(match.group(0)):
            return None
    return scanner.finish()


@dataclass(frozen=True)
class StepTiming:
    """How `when` numbers become steps: A1111's new rules, hires offsets, or the old rules."""

    steps: int
    int_offset: int = 0
    fraction_offset: float = 0.0
    old: bool = False

    @classmethod
    def of(cls, base_steps: int, hires_steps: int | None = None, use_old: bool = False) -> StepTiming:
        if hires_steps is None or use_old:
            return cls(base_steps, old=use_old)
        return cls(hires_steps, int_offset=base_steps, fraction_offset=1.0)

    def end_step(self, when: str) -> float:
        """The last step that shows `before` (at most `steps`; -inf for `-1e400`).

        A number with a `.` is a fraction of the steps, others a step number (`1e1` is step 10); the old
        rules take any number below 1 as a fraction. Truncated towards zero as in A1111 (0.29 * 100
        steps is step 28). A1111 raises OverflowError for `1e400`/`-1e400`; here they mean "never
        switches" and "switched from the start".
        """
        value = float(when)
        if self.old:
            value = value * self.steps if value < 1 else value
        elif "." in when:
            value = (value - self.fraction_offset) * self.steps
        else:
            value = value - self.int_offset
        return min(self.steps, int(value) if math.isfinite(value) else value)


def schedule_steps(items: Sequence[Item], timing: StepTiming) -> list[int]:
    """The steps at which the text may change, ending with `timing.steps` (A1111's schedule rows)."""
    ends = {timing.steps}
    for node in _nodes(items):
        if isinstance(node, Alternation):
            ends.update(range(1, timing.steps + 1))
        else:
            end = timing.end_step(node.when)
            if end >= 1:
                ends.add(int(end))
    return sorted(ends)


def render(items: Sequence[Item], step: int, timing: StepTiming) -> str:
    """The text shown at `step` (1-based; an edit shows `before` while `step <= end step`)."""
    out: list[str] = []
    pending: list[Iterator[Item]] = [iter(items)]
    while pending:
        for item in pending[-1]:
            if isinstance(item, str):
                out.append(item)
            else:
                pending.append(iter(_choice(item, step, timing)))
                break
        else:
            pending.pop()
    return "".join(out)


def _choice(node: Edit | Alternation, step: int, timing: StepTiming) -> tuple[Item, ...]:
    if isinstance(node, Alternation):
        return node.options[(step - 1) % len(node.options)]
    return node.before if step <= timing.end_step(node.when) else node.after


def _nodes(items: Sequence[Item]) -> Iterator[Edit | Alternation]:
    """Every edit and alternation, nested ones included (iterative: nesting can be thousands deep)."""
    pending = [items]
    while pending:
        for item in pending.pop():
            if isinstance(item, Edit):
                yield item
                pending += [item.before, item.after]
            elif isinstance(item, Alternation):
                yield item
                pending += item.options


def prompt_schedule(prompt: str, timing: StepTiming) -> list[list[int | str]]:
    """`[[end_step, text], ...]` for one prompt; the prompt as written if the grammar rejects it."""
    items = parse_schedule(prompt)
    if items is None:
        return [[timing.steps, prompt]]
    return [[end, render(items, end, timing)] for end in schedule_steps(items, timing)]


def get_learned_conditioning_prompt_schedules(
    prompts: Sequence[str],
    base_steps: int,
    hires_steps: int | None = None,
    use_old_scheduling: bool = False,
) -> list[list[list[int | str]]]:
    """Per prompt, `[[end_step, text], ...]`: text is used while the step is at most end_step.

    With `hires_steps` (new rules) the schedule spans the hires pass: integers count from the start of
    the first pass (`25` with 20 + 10 steps is hires step 5) and fractions from 1.0 (`1.5` is half-way).
    Identical prompts share one schedule list, as in A1111.
    """
    timing = StepTiming.of(base_steps, hires_steps, use_old_scheduling)
    schedules = {prompt: prompt_schedule(prompt, timing) for prompt in dict.fromkeys(prompts)}
    return [schedules[prompt] for prompt in prompts]


def schedule_entries(schedule: Sequence[Sequence[int | str]]) -> list[tuple[int, str]]:
    """One prompt's A1111 schedule `[[end_step, text], ...]` as typed `(end_step, text)` pairs."""
    return [(cast(int, end), cast(str, text)) for end, text in schedule]


@functools.cache
def schedule_grammar_parser() -> lark.Lark:
    """`SCHEDULE_GRAMMAR` compiled for lark's Earley parser, as A1111 uses it (slow on long prompts)."""
    import lark

    return lark.Lark(SCHEDULE_GRAMMAR)


# --------------------------------------------------------------------------------------------------
# AND (composable diffusion)

AND_PATTERN = re.compile(r"\bAND\b")
SUBPROMPT_WEIGHT_PATTERN = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")
"""A1111's `re_weight`; `split_subprompt_weight` gives its result in linear time."""

_AND_WEIGHT = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


def split_subprompt_weight(subprompt: str) -> tuple[str, float]:
    """`"a dog : 0.5 "` -> `("a dog", 0.5)`; without a trailing `:number` the weight is 1.0.

    Leading whitespace stays in the text. A trailing `:number` is a weight even right after a digit:
    `"16:9"` is `("16", 9.0)`, as in A1111.
    """
    body = subprompt.rstrip()
    head, colon, number = body.rpartition(":")
    if colon and _AND_WEIGHT.fullmatch(number.lstrip()):
        return head.rstrip(), float(number)
    return body, 1.0


def get_multicond_prompt_list(
    prompts: Sequence[str],
) -> tuple[list[list[tuple[int, float]]], list[str], dict[str, int]]:
    """Split each prompt at `AND`: per prompt `[(index, weight), ...]`, the distinct texts, text -> index."""
    res_indexes: list[list[tuple[int, float]]] = []
    flat: list[str] = []
    index_of: dict[str, int] = {}
    for prompt in prompts:
        indexes = []
        for subprompt in AND_PATTERN.split(prompt):
            text, weight = split_subprompt_weight(subprompt)
            if text not in index_of:
                index_of[text] = len(flat)
                flat.append(text)
            indexes.append((index_of[text], weight))
        res_indexes.append(indexes)
    return res_indexes, flat, index_of
