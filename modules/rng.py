"""A1111's `modules.rng`: seeded noise from the source Settings > "Random number generator source"
names (CPU, GPU or NV, Philox: an NVIDIA GPU's numbers on any machine), and `ImageRNG`, the per-image
noise of a batch (first noise with variation seeds and "resize seed from", then the sampler's draws).

Sumi's jobs make their noise the same way (engine/sampling/noise.py); these are the names extensions
call. `randn(seed, ...)` and `manual_seed` set the global generator that `randn_like` and
`randn_without_seed` (without a generator) go on drawing from, as A1111.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from modules import devices, shared
from modules.sumi.engine.sampling.image_rng import ImageRNG as _EngineImageRNG
from modules.sumi.engine.sampling.noise import (
    NV,
    draw,
    make_generators,
    noise_device,
    slerp,
    source_of_setting,
)
from modules.sumi.engine.sampling.philox import PhiloxGenerator

_nv_global = PhiloxGenerator(0)  # A1111's `nv_rng`: what NV draws come from without a generator


def _source() -> str:
    app = shared.running_app()
    return source_of_setting(getattr(app.options, "randn_source", "CPU") if app is not None else "CPU")


def _generator_device() -> torch.device | str:
    return noise_device(_source(), devices.device)


def manual_seed(seed: int) -> None:
    """Seed the global generator of the current source."""
    global _nv_global
    if _source() == NV:
        _nv_global = PhiloxGenerator(int(seed))
        return
    torch.manual_seed(int(seed))


def create_generator(seed: int) -> Any:
    """A generator of the current source seeded with `seed` (a torch.Generator, or Sumi's NV one)."""
    return make_generators([int(seed)], _generator_device())[0]


def randn_without_seed(shape: Sequence[int], generator: Any = None) -> torch.Tensor:
    """The next draws of `generator` (else the global generator), on the device."""
    where = _generator_device()
    if generator is not None:
        return draw(shape, generator).to(devices.device)
    if where == NV:
        return _nv_global.randn(shape).to(devices.device)
    return torch.randn(tuple(shape), device=where).to(devices.device)


def randn(seed: int, shape: Sequence[int], generator: Any = None) -> torch.Tensor:
    """Noise for `seed` (the global generator is seeded with it first)."""
    manual_seed(seed)
    return randn_without_seed(shape, generator)


def randn_local(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """The seed's first draws, leaving the global generator alone."""
    return draw(shape, create_generator(seed)).to(devices.device)


def randn_like(x: torch.Tensor) -> torch.Tensor:
    """Global-generator draws shaped like `x`, on its device and in its dtype."""
    where = _generator_device()
    if where == NV:
        return _nv_global.randn(x.shape).to(device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, device=where, dtype=x.dtype).to(x.device)


class ImageRNG(_EngineImageRNG):
    """A1111's ImageRNG: a batch's noise from the source and ENSD of the settings (the engine's class,
    which a job puts on `p.rng`)."""

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize_from_h: int = 0,
        seed_resize_from_w: int = 0,
    ) -> None:
        super().__init__(
            shape,
            seeds,
            subseeds,
            subseed_strength,
            seed_resize_from_h,
            seed_resize_from_w,
            source=_generator_device(),
            eta_noise_seed_delta=int(getattr(shared.opts, "eta_noise_seed_delta", 0) or 0),
            device=devices.device,
        )


__all__ = [
    "ImageRNG",
    "create_generator",
    "manual_seed",
    "randn",
    "randn_like",
    "randn_local",
    "randn_without_seed",
    "slerp",
]
