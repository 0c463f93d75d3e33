"""Initial noise per image, reproducible from its seed (A1111 semantics, CPU source by default).

Every image draws `torch.randn((C, H/8, W/8))` from its own generator seeded with its own seed, so an
image does not depend on its position in a batch, and the CPU source gives the same noise on any
hardware ("GPU" draws on the model's device; "NV" is A1111's Philox source, the numbers an NVIDIA GPU
draws, made on the CPU). Variation seeds blend two such draws with A1111's slerp, quirks included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from modules.sumi.engine.sampling.philox import PhiloxGenerator

_SEED_LOW, _SEED_HIGH = -(2**63), 2**64 - 1  # what torch's generators accept


def generator_seed(seed: int) -> int:
    """`seed` as a torch generator takes it: itself when torch accepts it (A1111's images for every
    seed A1111 can use), else wrapped into 0..2^64-1, so no seed (seed + i in a batch, + ENSD) fails."""
    seed = int(seed)
    return seed if _SEED_LOW <= seed <= _SEED_HIGH else seed % 2**64


Generator = torch.Generator | PhiloxGenerator  # a torch generator ("CPU"/"GPU" source) or A1111's "NV"
NV = "nv"  # the noise source A1111 calls "NV": Philox on the CPU, CUDA's numbers on any machine


def source_of_setting(randn_source: object) -> str:
    """A1111's "Random number generator source" setting ("GPU", "CPU", "NV", any case) as the engine
    names it: "gpu", "nv", else "cpu" (an unknown value keeps A1111's default, the CPU)."""
    return {"GPU": "gpu", "NV": NV}.get(str(randn_source).upper(), "cpu")


def noise_device(source: str, model_device: torch.device) -> torch.device | str:
    """Where a job's generators draw: "gpu" -> the model's device (the CPU on Apple's mps, as A1111:
    its generators are not reproducible there), "nv" -> NV, else the CPU."""
    if source == "gpu" and model_device.type != "mps":
        return model_device
    return NV if source == NV else torch.device("cpu")


def make_generators(seeds: Sequence[int], device: str | torch.device = "cpu") -> list[Generator]:
    """One generator per seed, on `device` (or NV generators for the device "nv")."""
    if str(device) == NV:
        return [PhiloxGenerator(generator_seed(seed)) for seed in seeds]
    return [torch.Generator(device=device).manual_seed(generator_seed(seed)) for seed in seeds]


def fresh_generator(like: Generator, seed: int) -> Generator:
    """A new generator of `like`'s kind and device, seeded with `seed`."""
    if isinstance(like, PhiloxGenerator):
        return PhiloxGenerator(generator_seed(seed))
    return torch.Generator(like.device).manual_seed(generator_seed(seed))


def draw(shape: Sequence[int], generator: Generator, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The generator's next normal draws of `shape`, on its device (NV: made in float32, then `dtype`)."""
    if isinstance(generator, PhiloxGenerator):
        values = generator.randn(shape)
        return values if dtype is None else values.to(dtype)
    return torch.randn(tuple(shape), generator=generator, device=generator.device, dtype=dtype)


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


def paste_centred(small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
    """`small` (C, h, w) pasted into `large` (C, H, W), centred; where it is bigger its middle is kept
    (A1111's "resize seed from": an odd difference leaves A1111's one row or column of `large`)."""
    dy, dx = (large.shape[1] - small.shape[1]) // 2, (large.shape[2] - small.shape[2]) // 2
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    ty, tx, sy, sx = max(dy, 0), max(dx, 0), max(-dy, 0), max(-dx, 0)
    large[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return large


def image_noise(
    shape: tuple[int, int, int],
    generators: Sequence[Generator],
    *,
    subseeds: Sequence[int] = (),
    subseed_strength: float = 0.0,
    seed_resize_from: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Noise for a batch, as A1111's ImageRNG.first(): each image's first draw from its generator,
    optionally blended with a variation seed's draw. With "resize seed from" (latent H, W) the seed's
    noise at that size (a fresh draw of the seed) is blended, then pasted centred into the image
    generator's draw at the real size. The generators go on to supply the sampler's ancestral noise."""
    small = None if seed_resize_from is None else (shape[0], *seed_resize_from)
    noise_shape = shape if small is None or tuple(small) == tuple(shape) else small
    blend = subseed_strength != 0 and len(subseeds) > 0
    draws = []
    for i, generator in enumerate(generators):
        variation = None
        if blend:
            subseed = subseeds[i] if i < len(subseeds) else 0
            variation = draw(noise_shape, fresh_generator(generator, subseed))
        seed_noise = generator if noise_shape == shape else fresh_generator(generator, _seed_of(generator))
        noise = draw(noise_shape, seed_noise)
        if variation is not None:
            noise = slerp(subseed_strength, noise, variation)
        if noise_shape != shape:
            noise = paste_centred(noise, draw(shape, generator))
        draws.append(noise)
    return torch.stack(draws)


def _seed_of(generator: Generator) -> int:
    return generator.seed if isinstance(generator, PhiloxGenerator) else generator.initial_seed()
