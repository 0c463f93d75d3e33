"""A1111's `ImageRNG`: the noise of one batch, one generator per seed. `first()` (or the first `next()`)
is the batch's starting noise (variation seeds and "resize seed from" included); each later `next()` is
the generators' next draws, the sampler's noise. With an ENSD the generators after `first()` are those
of seed + ENSD, as A1111's.

A job puts one on `p.rng` before its scripts' batch hooks (A1111 does); a script that replaces it (a
random-resolution script makes one of the new size) or draws from it changes the job's noise, as in
A1111 (engine.generate reads `BatchRequest.noise_rng`). `modules.rng.ImageRNG` is this class with the
source and ENSD of the settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from modules.sumi.engine.sampling.noise import Generator, draw, image_noise, make_generators


class NoiseSource(Protocol):
    """What a job takes from a script's `p.rng`: A1111's `next()` (the first call: the starting noise)."""

    def next(self) -> torch.Tensor: ...


class ImageRNG:
    """Seeds, variation seeds and "resize seed from" (pixels) as A1111 takes them; `source` is where the
    generators draw (engine.sampling.noise.noise_device), `device` where the noise is returned."""

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize_from_h: int = 0,
        seed_resize_from_w: int = 0,
        *,
        source: str | torch.device = "cpu",
        eta_noise_seed_delta: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.shape = tuple(int(v) for v in shape)
        self.seeds = [int(seed) for seed in seeds]
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.source = source
        self.eta_noise_seed_delta = int(eta_noise_seed_delta or 0)
        self.device = device
        self.generators: list[Generator] = make_generators(self.seeds, source)
        self.is_first = True

    def first(self) -> torch.Tensor:
        """The batch's starting noise; afterwards the generators are the ENSD ones when ENSD is set."""
        resize = None
        if self.seed_resize_from_h > 0 and self.seed_resize_from_w > 0:
            resize = (int(self.seed_resize_from_h) // 8, int(self.seed_resize_from_w) // 8)
        noise = image_noise(
            self.shape,  # type: ignore[arg-type]
            self.generators,
            subseeds=list(self.subseeds) if self.subseeds is not None else [],
            subseed_strength=self.subseed_strength if self.subseeds is not None else 0.0,
            seed_resize_from=resize,
        )
        if self.eta_noise_seed_delta:
            self.generators = make_generators(
                [s + self.eta_noise_seed_delta for s in self.seeds], self.source
            )
        return noise.to(self.device)

    def next(self) -> torch.Tensor:
        """The first noise on the first call, then each generator's next draws."""
        if self.is_first:
            self.is_first = False
            return self.first()
        return torch.stack([draw(self.shape, g) for g in self.generators]).to(self.device)
