"""Every integer is a usable seed: torch's generators take -2^63..2^64-1, anything else is wrapped
(a seed + i in a batch or + ENSD past 2^64 must not fail), and seeds torch takes keep their noise."""

from __future__ import annotations

import torch

from modules.sumi.engine.sampling.noise import generator_seed, image_noise, make_generators


def test_seeds_torch_accepts_draw_the_same_noise_as_torch():
    for seed in (0, 1234, 2**32, 2**64 - 1, -1, -(2**63)):
        (generator,) = make_generators([seed])
        expected = torch.randn((4, 2, 2), generator=torch.Generator().manual_seed(seed))
        assert torch.equal(torch.randn((4, 2, 2), generator=generator), expected), seed


def test_seeds_outside_torchs_range_wrap_instead_of_overflowing():
    assert generator_seed(2**64) == 0 and generator_seed(2**64 + 5) == 5
    assert generator_seed(-(2**63) - 1) == 2**64 - 2**63 - 1
    noise = image_noise(
        (4, 2, 2),
        make_generators([2**64 + 5, -(2**63) - 1, 10**30]),
        subseeds=[2**70, 1, 2],
        subseed_strength=0.5,
    )
    assert noise.shape == (3, 4, 2, 2) and torch.isfinite(noise).all()
    same = image_noise((4, 2, 2), make_generators([5]))
    assert torch.equal(image_noise((4, 2, 2), make_generators([2**64 + 5])), same)
