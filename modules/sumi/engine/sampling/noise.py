"""Initial noise per image, reproducible from its seed (A1111 semantics, CPU source by default).

Every image draws `torch.randn((C, H/8, W/8))` from its own generator seeded with its own seed, so an
image does not depend on its position in a batch, and the CPU source gives the same noise on any
hardware. Variation seeds blend two such draws with A1111's slerp, quirks included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_SEED_LOW, _SEED_HIGH = -(2**63), 2**64 - 1  # what torch's generators accept


def generator_seed(seed: int) -> int:
    """`seed` as a torch generator takes it: itself when torch accepts it (A1111's images for every
    seed A1111 can use), else wrapped into 0..2^64-1, so no seed (seed + i in a batch, + ENSD) fails."""
    seed = int(seed)
    return seed if _SEED_LOW <= seed <= _SEED_HIGH else seed % 2**64


def make_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(generator_seed(seed)) for seed in seeds]


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's slerp: norms over dim 1 of (C, H, W); the near-parallel fallback weights in reverse."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(
        1
    ) * high


def _draw(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device)


def _draw_resized(shape, generator: torch.Generator, from_shape: tuple[int, int] | None) -> torch.Tensor:
    """Noise drawn at `from_shape` (latent H, W) and pasted centred into `shape` (A1111 'resize seed')."""
    if from_shape is None or tuple(from_shape) == tuple(shape[1:]):
        return _draw(shape, generator)
    small = _draw((shape[0], *from_shape), generator)
    out = _draw(shape, generator)
    dy, dx = (shape[1] - from_shape[0]) // 2, (shape[2] - from_shape[1]) // 2
    h, w = min(shape[1], from_shape[0]), min(shape[2], from_shape[1])
    ty, tx = max(dy, 0), max(dx, 0)
    sy, sx = max(-dy, 0), max(-dx, 0)
    out[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return out


def image_noise(
    shape: tuple[int, int, int],
    generators: Sequence[torch.Generator],
    *,
    subseeds: Sequence[int] = (),
    subseed_strength: float = 0.0,
    seed_resize_from: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Noise for a batch: one (C, H, W) draw from each image's generator, optionally blended with
    a variation seed. The generators go on to supply the sampler's ancestral noise, as in A1111."""
    draws = []
    for i, generator in enumerate(generators):
        noise = _draw_resized(shape, generator, seed_resize_from)
        if subseed_strength > 0 and subseeds:
            variation = _draw(
                shape, torch.Generator(generator.device).manual_seed(generator_seed(subseeds[i]))
            )
            noise = slerp(subseed_strength, noise, variation)
        draws.append(noise)
    return torch.stack(draws)
