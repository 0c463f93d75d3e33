"""The job's tiled-VAE policy from its settings, and what the job says when the VAE ran in tiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modules.sumi.engine.accel.tiled_vae import Tiled, TilingPolicy
from modules.sumi.engine.errors import InvalidRequestError

INFOTEXT_KEY = "Tiled VAE"


def policy(options: Any, p: Any = None) -> TilingPolicy:
    """`sumi_tiled_vae` ("Auto", "Always", "Never"), `sumi_tiled_vae_tile_size`, `sumi_tiled_vae_overlap`;
    a job's own policy (`p.vae_tiling`, set by the Tiled VAE script) wins."""
    override = getattr(p, "vae_tiling", None)
    if isinstance(override, TilingPolicy):
        return override
    try:
        return TilingPolicy(
            mode=str(options.sumi_tiled_vae),
            tile=int(options.sumi_tiled_vae_tile_size),
            overlap=int(options.sumi_tiled_vae_overlap),
        )
    except ValueError as exc:
        raise InvalidRequestError(f"Settings > VAE: {exc}") from exc


def record(p: Any, events: Sequence[Tiled]) -> None:
    """Writes the tiled passes into the job's infotext ("Tiled VAE: encode+decode 64/16") and a warning
    for a pass that ran out of memory first."""
    if not events:
        return
    before = str(p.extra_generation_params.get(INFOTEXT_KEY) or "").split(" ")[0].split("+")
    stages = {*before, *(event.stage for event in events)}
    order = "+".join(stage for stage in ("encode", "decode") if stage in stages)
    p.extra_generation_params[INFOTEXT_KEY] = f"{order} {events[-1].tile}/{events[-1].overlap}"
    for event in events:
        if event.reason == "out of memory" and event.message() not in p.warnings:
            p.warnings.append(event.message())
