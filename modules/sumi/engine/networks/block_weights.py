"""LoRA block weights, as sd-webui-lora-block-weight writes them: `<lora:name:1:lbw=OUTD>` or
`lbw=1,0,0,0,0,0,0,0,1,1,1,1,0,0,0,0,0`.

A list gives one ratio per block, in one of four layouts: 17 (SD1/SD2 LoRA: the blocks that hold
attention), 26 (SD1/SD2 LyCORIS: every block), 12 (SDXL LoRA) or 20 (SDXL LyCORIS); BASE is the text
encoder(s). A block the chosen layout leaves out gets 0, and layers outside every block (time
embedding, conv_out) keep 1, as the extension does. A ratio multiplies the network's delta in that
block on top of the te/unet multipliers. Values may be numbers, `R` (random in 0..1), `U` (random in
-0.5..1.5) or `X`, `X+0.5`, `X-0.2` (the `x=` value, or 1, plus or minus an offset); random values are
drawn from the job's seed, so a seed redraws the same image (the extension's are unseeded).

Element weights (`lbwe=NAME`, a preset of the extension's elempresets.txt) then set the ratio of single
layers: each directive `blocks:elements:ratio` (blocks as ids or ranges, `IN05-OUT05`, elements as parts
of the layer's A1111 name, `attn` / `attn1` / `proj`; either list may start with NOT; empty matches all)
gives its ratio to the layers of those blocks whose name holds one of the elements; later directives win.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

BASE = "BASE"
_IN, _OUT = [f"IN{i:02d}" for i in range(12)], [f"OUT{i:02d}" for i in range(12)]
LAYOUTS: dict[int, tuple[str, ...]] = {
    12: ("BASE", "IN04", "IN05", "IN07", "IN08", "M00", "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05"),
    17: ("BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "M00", *_OUT[3:]),
    20: ("BASE", *_IN[:9], "M00", *_OUT[:9]),
    26: ("BASE", *_IN, "M00", *_OUT),
}
# The extension's built-in presets (17 values: SD1/SD2 LoRA).
DEFAULT_PRESETS = {
    "NONE": "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
    "ALL": "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
    "INS": "1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0",
    "IND": "1,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0",
    "INALL": "1,1,1,1,1,1,1,0,0,0,0,0,0,0,0,0,0",
    "MIDD": "1,0,0,0,1,1,1,1,1,1,1,1,0,0,0,0,0",
    "OUTD": "1,0,0,0,0,0,0,0,1,1,1,1,0,0,0,0,0",
    "OUTS": "1,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1",
    "OUTALL": "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1",
    "ALL0.5": "0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
}
_INHERITED = re.compile(r"X(?:([+-])(\d+(?:\.\d*)?|\.\d+))?")


BLOCK_ORDER = LAYOUTS[26]  # the order ranges like IN05-OUT05 follow (SDXL's ids are among them)
ALL_ONES = ",".join(["1"] * 26)
# The extension's built-in element presets (its ELEMPRESETS): NAME:directives, one entry per paragraph.
DEFAULT_ELEMENT_PRESETS = {
    "ATTNDEEPON": "IN05-OUT05:attn:1",
    "ATTNDEEPOFF": "IN05-OUT05:attn:0",
    "PROJDEEPOFF": "IN05-OUT05:proj:0",
    "XYZ": "::1",
}


@dataclass(frozen=True)
class ElementRule:
    """One `blocks:elements:ratio` directive of an element preset."""

    blocks: tuple[str, ...]
    elements: tuple[str, ...]
    ratio: float
    not_blocks: bool = False
    not_elements: bool = False

    def matches(self, name: str) -> bool:
        """Whether the rule reaches a layer; `name` is its A1111 network name followed by its block id
        ("diffusion_model_input_blocks_4_1_transformer_blocks_0_attn1_to_qIN04"), matched by parts."""
        in_blocks = any(block in name for block in self.blocks)
        if in_blocks == self.not_blocks:
            return False
        in_elements = any(element in name for element in self.elements)
        return in_elements != self.not_elements


@dataclass(frozen=True)
class BlockWeights:
    """One ratio per block (by id: "BASE", "IN04", "M00", "OUT11"), then the element rules that set
    single layers' ratios; `spec` is what the prompt said."""

    ratios: tuple[tuple[str, float], ...]
    spec: str = ""
    elements: tuple[ElementRule, ...] = ()

    def ratio(self, block: str | None) -> float:
        """The ratio of a layer in `block`; None (outside every block) keeps 1."""
        if block is None:
            return 1.0
        return dict(self.ratios).get(block, 0.0)

    def layer_ratio(self, block: str | None, name: str) -> float:
        """The ratio of the layer `name` (its A1111 network name) in `block`: the block's, unless an
        element rule reaches it (the last one that does)."""
        ratio = self.ratio(block)
        labelled = name + (block or "")
        for rule in self.elements:
            if rule.matches(labelled):
                ratio = rule.ratio
        return ratio

    def with_elements(self, rules: tuple[ElementRule, ...]) -> BlockWeights:
        return replace(self, elements=rules)


def read_element_presets(text: str) -> dict[str, str]:
    """The extension's elempresets.txt: entries separated by a blank line, each `NAME:directives`."""
    presets = {}
    for entry in text.replace("\r\n", "\n").split("\n\n"):
        name, colon, directives = entry.strip().partition(":")
        if colon and name.strip():
            presets[name.strip()] = directives.strip()
    return presets


def _expand_ranges(text: str) -> list[str]:
    """Block ids, with `IN05-OUT05` ranges spelled out in BLOCK_ORDER (either direction)."""
    blocks = []
    for item in text.split():
        first, dash, last = item.partition("-")
        if dash and first in BLOCK_ORDER and last in BLOCK_ORDER:
            a, b = sorted((BLOCK_ORDER.index(first), BLOCK_ORDER.index(last)))
            blocks.extend(BLOCK_ORDER[a : b + 1])
        else:
            blocks.append(item)
    return blocks


def parse_elements(directives: str) -> tuple[ElementRule, ...]:
    """`blocks:elements:ratio` directives separated by commas or new lines (others are skipped, as the
    extension skips them); ValueError for a ratio that is not a number."""
    rules = []
    for directive in directives.replace("\n", ",").split(","):
        if directive.count(":") != 2:
            continue
        blocks_text, elements_text, ratio_text = directive.split(":")
        blocks = _expand_ranges(blocks_text) or [""]
        elements = elements_text.split() or [""]
        not_blocks, not_elements = blocks[0] == "NOT", elements[0] == "NOT"
        try:
            ratio = float(ratio_text)
        except ValueError:
            raise ValueError(
                f"element weight '{directive.strip()}': '{ratio_text}' is not a number"
            ) from None
        rules.append(
            ElementRule(
                tuple(blocks[1:] if not_blocks else blocks),
                tuple(elements[1:] if not_elements else elements),
                ratio,
                not_blocks,
                not_elements,
            )
        )
    return tuple(rules)


def read_presets(text: str) -> dict[str, str]:
    """`NAME:v1,v2,...` lines (12, 17, 20 or 26 values, as the extension's lbwpresets.txt); lines with a
    `#`, without a name or with another count are skipped, as the extension skips them."""
    presets = {}
    for line in text.splitlines():
        name, colon, values = line.partition(":")
        if not colon or "#" in line or values.count(",") + 1 not in LAYOUTS or not name.strip():
            continue
        presets[name.strip()] = values.strip()
    return presets


def is_block_weight_list(text: str, presets: Mapping[str, str]) -> bool:
    """Whether `text` names a preset or holds a list of a block-weight layout's length."""
    return text.strip() in presets or text.count(",") + 1 in LAYOUTS


def _value(item: str, inherited: float, rng: random.Random) -> float:
    if item == "R":
        return round(rng.random(), 3)
    if item == "U":
        return round(rng.uniform(-0.5, 1.5), 3)
    if item.startswith("X"):
        found = _INHERITED.fullmatch(item)
        if found is None:
            raise ValueError(f"'{item}' is not X, X+number or X-number")
        offset = float(found[2]) if found[2] else 0.0
        return inherited - offset if found[1] == "-" else inherited + offset
    try:
        return float(item)
    except ValueError:
        raise ValueError(f"'{item}' is not a number, R, U or X") from None


def parse_block_weights(
    spec: str, presets: Mapping[str, str], *, inherited: float = 1.0, seed: int = 0
) -> BlockWeights:
    """A preset name or a list of 12, 17, 20 or 26 values; ValueError saying what is accepted."""
    text = presets.get(spec.strip(), spec)
    items = [item.strip() for item in text.split(",")]
    layout = LAYOUTS.get(len(items))
    if layout is None:
        known = ", ".join(sorted(presets)) or "none"
        raise ValueError(
            f"block weights '{spec}' are neither a preset ({known}) nor a list of 12 (SDXL), 17 (SD1/SD2), "
            f"20 (SDXL LyCORIS) or 26 (SD1/SD2 LyCORIS) values"
        )
    rng = random.Random(seed)
    try:
        values = [_value(item, inherited, rng) for item in items]
    except ValueError as exc:
        raise ValueError(f"block weights '{spec}': {exc}") from None
    return BlockWeights(tuple(zip(layout, values, strict=True)), spec.strip())
