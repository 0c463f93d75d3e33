"""A1111's "NV" noise source (Philox4x32-10 on the CPU, the numbers an NVIDIA GPU draws) and A1111's
ImageRNG rules for the first noise: variation seeds, "resize seed from", the generators going on into
the sampler's noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modules.sumi.engine.sampling.noise import (
    NV,
    draw,
    fresh_generator,
    image_noise,
    make_generators,
    noise_device,
    slerp,
    source_of_setting,
)
from modules.sumi.engine.sampling.philox import PhiloxGenerator, philox4x32

# Random123's known-answer vectors for Philox4x32-10: (counter, key) -> output
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_the_generator_is_philox4x32_10_by_its_known_answers(counter, key, expected):
    words = philox4x32(np.array(counter, np.uint32).reshape(4, 1), np.array(key, np.uint32).reshape(2, 1))
    assert tuple(int(w[0]) for w in words) == expected


def test_seed_0_draws_what_torch_draws_on_a_cuda_device_with_seed_0():
    # torch.manual_seed(0); torch.randn(6, device="cuda"), on any NVIDIA GPU
    cuda_seed_0 = [-0.9247, -0.4253, -2.6438, 0.1452, -0.1209, -0.5797]
    torch.testing.assert_close(PhiloxGenerator(0).randn((6,)), torch.tensor(cuda_seed_0), atol=5e-5, rtol=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("seed", [0, 1234, 2**32 + 7])
def test_nv_noise_equals_torch_on_cuda(seed):
    cuda = torch.Generator("cuda").manual_seed(seed)
    theirs = torch.randn((4, 16, 16), generator=cuda, device="cuda").cpu()
    torch.testing.assert_close(PhiloxGenerator(seed).randn((4, 16, 16)), theirs, atol=1e-6, rtol=0)


def _one_value(seed: int, offset: int, index: int) -> float:
    """The same value computed one at a time from the definition, with Python integers."""
    m0, m1, w0, w1, mask = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85, 0xFFFFFFFF
    c = [offset & mask, 0, index, 0]
    k = [seed & mask, (seed >> 32) & mask]
    for r in range(10):
        if r:
            k = [(k[0] + w0) & mask, (k[1] + w1) & mask]
        p0, p1 = c[0] * m0, c[2] * m1
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & mask, (p0 >> 32) ^ c[3] ^ k[1], p0 & mask]
    unit, angle_unit = float(np.float32(2.0**-32)), float(np.float32(2.0**-32 * 2 * math.pi))
    u = c[0] * unit + unit / 2
    v = c[1] * angle_unit + angle_unit / 2
    return float(np.float32(math.sqrt(-2.0 * math.log(u)) * math.sin(v)))


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5, 2**40 + 3, 2**64 - 1])
def test_each_call_is_the_next_block_of_the_seed_s_stream(seed):
    g = PhiloxGenerator(seed)
    blocks = [g.randn((2, 3)).flatten().tolist() for _ in range(3)]
    for offset, block in enumerate(blocks):
        assert block == [_one_value(seed, offset, i) for i in range(6)]
    assert PhiloxGenerator(seed).randn((2, 3)).dtype == torch.float32


def test_negative_and_huge_seeds_wrap_as_a_torch_generator_takes_them():
    (nv,) = make_generators([-1], "nv")
    assert isinstance(nv, PhiloxGenerator) and nv.seed == 2**64 - 1
    cpu = make_generators([5], "cpu")[0]
    assert isinstance(cpu, torch.Generator) and isinstance(fresh_generator(nv, 3), PhiloxGenerator)


@pytest.mark.parametrize("source", ["cpu", "nv"])
def test_first_noise_is_each_seed_s_first_draw_and_the_generators_go_on(source):
    shape = (4, 6, 5)
    generators = make_generators([10, 11], source)
    noise = image_noise(shape, generators)
    for i, seed in enumerate((10, 11)):
        fresh = make_generators([seed], source)[0]
        assert torch.equal(noise[i], draw(shape, fresh))
        assert torch.equal(draw(shape, generators[i]), draw(shape, fresh))  # the sampler's next draw


@pytest.mark.parametrize("source", ["cpu", "nv"])
def test_a_variation_seed_blends_its_own_first_draw_by_a1111_s_slerp(source):
    shape = (4, 6, 6)
    noise = image_noise(shape, make_generators([1, 2], source), subseeds=[50], subseed_strength=0.3)
    own, variation = (draw(shape, make_generators([s], source)[0]) for s in (1, 50))
    torch.testing.assert_close(noise[0], slerp(0.3, own, variation))
    second = draw(shape, make_generators([2], source)[0])  # past the list's end: A1111's subseed 0
    zero = draw(shape, make_generators([0], source)[0])
    torch.testing.assert_close(noise[1], slerp(0.3, second, zero))


@pytest.mark.parametrize("source", ["cpu", "nv"])
@pytest.mark.parametrize(("small", "large"), [((4, 4), (8, 6)), ((12, 12), (9, 9)), ((5, 10), (8, 7))])
def test_resize_seed_from_pastes_the_seed_s_noise_at_the_old_size_into_the_generator_s_draw(
    source, small, large
):
    """A1111's ImageRNG.first(): the seed's noise at the old size (blended with the variation drawn at the
    old size) goes into the middle of the image generator's first draw at the new size; an odd
    difference keeps A1111's one row or column of that draw."""
    shape = (4, *large)
    generators = make_generators([7], source)
    noise = image_noise(shape, generators, subseeds=[9], subseed_strength=0.5, seed_resize_from=small)
    old = slerp(0.5, *(draw((4, *small), make_generators([s], source)[0]) for s in (7, 9)))
    expected = draw(shape, make_generators([7], source)[0])
    placed = []  # per axis: (where it goes in the new noise, which part of the old noise)
    for axis in (1, 2):
        d = (shape[axis] - old.shape[axis]) // 2
        n = old.shape[axis] if d >= 0 else old.shape[axis] + 2 * d
        placed.append((slice(max(d, 0), max(d, 0) + n), slice(max(-d, 0), max(-d, 0) + n)))
    (to_y, from_y), (to_x, from_x) = placed
    expected[:, to_y, to_x] = old[:, from_y, from_x]
    torch.testing.assert_close(noise[0], expected)
    after_one = make_generators([7], source)[0]
    draw(shape, after_one)
    assert torch.equal(draw(shape, generators[0]), draw(shape, after_one))  # one draw at the new size so far


def test_the_setting_names_its_source_in_any_case_and_unknown_values_keep_the_cpu():
    assert [source_of_setting(v) for v in ("GPU", "gpu", "NV", "nv", "CPU", "", None, "TPU")] == [
        "gpu",
        "gpu",
        NV,
        NV,
        "cpu",
        "cpu",
        "cpu",
        "cpu",
    ]


def test_gpu_noise_draws_on_the_model_s_device_except_apple_s_mps_which_draws_on_the_cpu():
    assert noise_device("gpu", torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert noise_device("gpu", torch.device("mps")) == torch.device("cpu")
    assert noise_device("cpu", torch.device("cuda")) == torch.device("cpu")
    assert noise_device(NV, torch.device("cuda")) == NV
