"""Where the k-diffusion samplers' fresh noise comes from, per image, reproducible from its seed.

A noise source is called with the step's (sigma, sigma_next) and returns standard normal noise shaped
like the latents. `GeneratorNoise` draws from each image's own generator (the generators that drew the
image's initial noise, reseeded with ENSD when set: A1111's `ImageRNG`). `BrownianNoise` is A1111's
`BrownianTreeNoiseSampler` with one torchsde Brownian tree per image seed, so an image's noise does not
depend on the batch it is in; Sumi builds the trees on the CPU, like its other noise.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import cast

import torch
import torchsde

from modules.sumi.engine.host_values import send
from modules.sumi.engine.sampling.noise import Generator, draw

NoiseSource = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# torchsde warns when a query hits the tree's ends to within float rounding (A1111's console shows it
# on every SDE image); the query is clamped and the noise is right.
warnings.filterwarnings("ignore", message=r"Should have (ta>=t0|tb<=t1)", module="torchsde")


class GeneratorNoise:
    """randn per image from its generator, on the generator's device, then on the latents' device."""

    def __init__(self, like: torch.Tensor, generators: Sequence[Generator]) -> None:
        if len(generators) != like.shape[0]:
            raise ValueError(f"{len(generators)} generators for a batch of {like.shape[0]}")
        self.like = like
        self.generators = list(generators)

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        shape = tuple(self.like.shape[1:])
        draws = [draw(shape, g) for g in self.generators]
        return send(torch.stack(draws), self.like.device, self.like.dtype)


def randn_on(
    shape: Sequence[int],
    generator: Generator | list[Generator] | None,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The draws diffusers' `randn_tensor` makes (one generator for all rows, or one per row, each on
    its own device), sent to `device` without blocking (`randn_tensor` copies host draws blocking)."""
    if isinstance(generator, list) and len(generator) == 1:
        generator = generator[0]
    if isinstance(generator, list):
        rows = [draw((1, *shape[1:]), g, dtype) for g in generator]
        return send(torch.cat(rows), device)
    if generator is None:
        return send(torch.randn(tuple(shape), device=device, dtype=dtype), device)
    return send(draw(shape, generator, dtype), device)


class BrownianNoise:
    """Brownian increments between two noise levels, normalised to unit variance, one tree per seed."""

    def __init__(self, like: torch.Tensor, sigma_min: float, sigma_max: float, seeds: Sequence[int]) -> None:
        if len(seeds) != like.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for a batch of {like.shape[0]}")
        self.like = like
        w0 = torch.zeros(tuple(like.shape[1:]), dtype=like.dtype)
        t0, t1 = torch.as_tensor(float(sigma_min)), torch.as_tensor(float(sigma_max))
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(s)) for s in seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        a, b = torch.as_tensor(float(sigma)), torch.as_tensor(float(sigma_next))
        low, high, sign = (a, b, 1) if a < b else (b, a, -1)
        w = torch.stack([cast(torch.Tensor, tree(low, high)) for tree in self.trees]) * sign
        return send(w / (b - a).abs().sqrt(), self.like.device, self.like.dtype)
