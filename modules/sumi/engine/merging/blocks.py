"""Which ratio each checkpoint key gets in a block-weighted merge, in the block names merge-block-weighted
and supermerger use: BASE (the text encoders), IN00..IN11, M00, OUT00..OUT11 for SD1/SD2 (26 values) and
BASE, IN00..IN08, M00, OUT00..OUT08 for SDXL (20). As in merge-block-weighted, the time (and SDXL's size)
embedding counts as IN00 and the UNet's output layers as the last OUT block. The VAE belongs to no
block: it is kept from the primary model unless the merge is asked to blend it too.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from modules.sumi.engine.unet_blocks import ldm_block

UNET = "model.diffusion_model."
TEXT_PREFIXES = ("cond_stage_model.", "conditioner.embedders.")
VAE_PREFIX = "first_stage_model."
VAE = "VAE"

# merge-block-weighted's presets: 25 UNet ratios (IN00..IN11, M00, OUT00..OUT11), curves over the UNet.
_STEP = [i / 12 for i in range(13)]
MERGE_PRESETS: dict[str, tuple[float, ...]] = {
    "GRAD_V": (*reversed(_STEP), *_STEP[1:]),
    "GRAD_A": (*_STEP, *reversed(_STEP[:-1])),
    "FLAT_25": (0.25,) * 25,
    "FLAT_75": (0.75,) * 25,
    "WRAP08": (1,) * 4 + (0,) * 17 + (1,) * 4,
    "WRAP12": (1,) * 6 + (0,) * 13 + (1,) * 6,
    "WRAP14": (1,) * 7 + (0,) * 11 + (1,) * 7,
    "WRAP16": (1,) * 8 + (0,) * 9 + (1,) * 8,
    "MID12_50": (0,) * 5 + (0.5,) * 14 + (0,) * 6,
    "OUT07": (0,) * 18 + (1,) * 7,
    "OUT12": (0,) * 13 + (1,) * 12,
    "OUT12_5": (0,) * 12 + (0.5,) + (1,) * 12,
    "RING08_SOFT": (0, 0, 0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0, 0, 0, 0, 0.5, 1, 1, 1, 0.5, 0, 0, 0, 0, 0),
    "RING08_5": (0,) * 6 + (1,) * 4 + (0,) * 5 + (1,) * 4 + (0,) * 6,
    "RING10_5": (0,) * 5 + (1,) * 5 + (0,) * 5 + (1,) * 5 + (0,) * 5,
    "RING10_3": (0,) * 6 + (1,) * 5 + (0,) * 3 + (1,) * 5 + (0,) * 6,
    "SMOOTHSTEP": tuple(float(3 * t**2 - 2 * t**3) for t in np.linspace(0, 1, 25)),
    "REVERSE_SMOOTHSTEP": tuple(float(1 - (3 * t**2 - 2 * t**3)) for t in np.linspace(0, 1, 25)),
}
MERGE_PRESETS["NORMAL-SIGMOID"] = MERGE_PRESETS["SMOOTHSTEP"]  # the extension's names for them
MERGE_PRESETS["REVERSE-SIGMOID"] = MERGE_PRESETS["REVERSE_SMOOTHSTEP"]


def merge_layout(sdxl: bool) -> tuple[str, ...]:
    depth = 9 if sdxl else 12
    return ("BASE", *(f"IN{i:02d}" for i in range(depth)), "M00", *(f"OUT{i:02d}" for i in range(depth)))


def merge_block(key: str, sdxl: bool) -> str | None:
    """The block whose ratio `key` takes: a `merge_layout` id, VAE, or None (kept from the primary)."""
    if key.startswith(UNET):
        block = ldm_block(key)
        if block is not None:
            return block
        rest = key[len(UNET) :]
        if rest.startswith(("time_embed.", "label_emb.")):
            return "IN00"
        if rest.startswith("out."):
            return merge_layout(sdxl)[-1]
        return None
    if key.startswith(TEXT_PREFIXES):
        return "BASE"
    if key.startswith(VAE_PREFIX):
        return VAE
    return None


def _resampled(curve: tuple[float, ...], depth: int) -> list[float]:
    """A 25-value SD1 curve (12 in, middle, 12 out) on a UNet with `depth` blocks each way."""
    if depth == 12:
        return list(curve)
    spots = np.linspace(0, 11, depth)
    down = np.interp(spots, np.arange(12), curve[:12])
    up = np.interp(spots, np.arange(12), curve[13:])
    return [*map(float, down), curve[12], *map(float, up)]


def parse_merge_weights(
    spec: str, sdxl: bool, base: float, presets: Mapping[str, tuple[float, ...]] = MERGE_PRESETS
) -> dict[str, float]:
    """Block ratios from a preset name (its UNet curve, BASE = `base`) or a list of the layout's values
    with BASE first (26 for SD1/SD2, 20 for SDXL) or without it (25 / 19: BASE = `base`)."""
    layout = merge_layout(sdxl)
    name = spec.strip()
    if name in presets:
        values = [base, *_resampled(presets[name], len(layout) // 2 - 1 if sdxl else 12)]
        return dict(zip(layout, values, strict=True))
    try:
        values = [float(item) for item in name.split(",")]
    except ValueError:
        values = []
    if len(values) == len(layout) - 1:
        values = [base, *values]
    if len(values) != len(layout):
        raise ValueError(
            f"block weights '{spec}' are neither a preset ({', '.join(presets)}) nor {len(layout)} numbers "
            f"({', '.join((layout[0], layout[1], '...', layout[-1]))}; or {len(layout) - 1} without BASE) for "
            f"{'an SDXL' if sdxl else 'an SD1/SD2'} model"
        )
    return dict(zip(layout, values, strict=True))
