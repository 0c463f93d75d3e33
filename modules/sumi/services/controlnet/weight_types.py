"""IP-Adapter weight types: one weight per transformer block from a named curve, as sd-webui-controlnet's
"Weight Type" (after ComfyUI_IPAdapter_plus) fills its advanced weighting.

Blocks are numbered down, middle, up: SD1/SD2 have 16 (6 down, the middle at 6, 9 up), SDXL 11 (4 down,
the middle at 4, 6 up). Curves scale the unit's weight along the blocks; the "style" and "composition"
types keep only the blocks that carry style (SD1: the outer ones; SDXL: up block 1) or layout (SD1:
down 4-5; SDXL: down 3), the composition blocks taking their own weight.
"""

from __future__ import annotations

from collections.abc import Callable

WEIGHT_TYPES = (
    "normal",
    "ease in",
    "ease out",
    "ease in-out",
    "reverse in-out",
    "weak input",
    "weak output",
    "weak middle",
    "strong middle",
    "style transfer",
    "composition",
    "strong style transfer",
    "style and composition",
    "strong style and composition",
)
COMPOSITION_TYPES = ("style and composition", "strong style and composition")  # they take a second weight
BLOCKS = {"SD1": 16, "SD2": 16, "SDXL": 11}
MIDDLE = {"SD1": 6, "SD2": 6, "SDXL": 4}
WEAK = 0.2  # the "weak ..." / "strong middle" factor
FLOOR = 0.05  # the curves never go below 5% of the weight

# Which blocks the style/composition types keep: block -> ("w" | "c", factor of the weight / composition).
_STYLE_SD1 = (0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 15)
_KEPT: dict[tuple[str, bool], dict[int, tuple[str, float]]] = {
    ("style transfer", False): {b: ("w", 1.0) for b in _STYLE_SD1},
    ("style transfer", True): {6: ("w", 1.0)},
    ("composition", False): {4: ("w", 0.25), 5: ("w", 1.0)},
    ("composition", True): {3: ("w", 1.0)},
    ("strong style transfer", False): {b: ("w", 1.0) for b in range(16) if b not in (4, 5)},
    ("strong style transfer", True): {b: ("w", 1.0) for b in range(11) if b != 3},
    ("style and composition", False): {
        **{b: ("w", 1.0) for b in _STYLE_SD1},
        4: ("c", 0.25),
        5: ("c", 1.0),
    },
    ("style and composition", True): {3: ("c", 1.0), 6: ("w", 1.0)},
    ("strong style and composition", False): {
        **{b: ("w", 1.0) for b in range(16)},
        4: ("c", 1.0),
        5: ("c", 1.0),
    },
    ("strong style and composition", True): {**{b: ("w", 1.0) for b in range(11)}, 3: ("c", 1.0)},
}


def block_weights(
    weight_type: str, weight: float, family: str | None, composition: float = 1.0
) -> list[float]:
    """The weight of each transformer block for `weight_type` (ValueError for an unknown type)."""
    family = family if family in BLOCKS else "SD1"
    count, middle = BLOCKS[family], MIDDLE[family]
    sdxl = family == "SDXL"
    if (weight_type, sdxl) in _KEPT:
        kept = _KEPT[(weight_type, sdxl)]
        values = {"w": weight, "c": composition}
        return [values[kept[b][0]] * kept[b][1] if b in kept else 0.0 for b in range(count)]
    curve = _CURVES.get(weight_type)
    if curve is None:
        raise ValueError(f"unknown weight type {weight_type!r}; use one of: {', '.join(WEIGHT_TYPES)}")
    return [weight * curve(block, count, middle) for block in range(count)]


def _part(block: int, middle: int) -> str:
    return "input" if block < middle else "middle" if block == middle else "output"


def _weak(*parts: str) -> Callable[[int, int, int], float]:
    return lambda block, count, middle: WEAK if _part(block, middle) in parts else 1.0


def _eased(shape: Callable[[float, int], float]) -> Callable[[int, int, int], float]:
    return lambda block, count, middle: FLOOR + (1 - FLOOR) * shape(block, count)


_CURVES: dict[str, Callable[[int, int, int], float]] = {
    "normal": lambda block, count, middle: 1.0,
    "ease in": _eased(lambda t, n: 1 - t / n),
    "ease out": _eased(lambda t, n: t / n),
    "ease in-out": _eased(lambda t, n: 1 - abs(t - n / 2) / (n / 2)),
    "reverse in-out": _eased(lambda t, n: abs(t - n / 2) / (n / 2)),
    "weak input": _weak("input"),
    "weak output": _weak("output"),
    "weak middle": _weak("middle"),
    "strong middle": _weak("input", "output"),
}


def block_parts(family: str | None) -> list[str]:
    """ "input" / "middle" / "output" for each block (the plot's colours)."""
    family = family if family in BLOCKS else "SD1"
    return [_part(b, MIDDLE[family]) for b in range(BLOCKS[family])]
