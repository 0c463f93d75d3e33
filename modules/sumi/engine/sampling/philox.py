"""A1111's "NV" random number source: normal draws made with the Philox4x32-10 counter-based generator
(Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011; the generator curand and PyTorch's
CUDA backend use), computed on the CPU, so a seed gives the same noise on any machine that an NVIDIA
GPU gives. A1111 offers it as Settings > Sampler parameters > "Random number generator source" = NV
and writes "RNG: NV" in the infotext.

Each `randn(shape)` call is one block of the generator's stream: element i of the block is Philox of
the counter (offset, 0, i, 0) under the key (seed's low 32 bits, high 32 bits), and the block's offset
then moves on by one. The first two words of each output become one normal value by Box-Muller (the
sine branch), in float64 from float32 constants, rounded to float32 — the arithmetic A1111 does, so
the values are the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ROUNDS = 10
MULTIPLIERS = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
KEY_BUMPS = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
LOW_32 = np.uint64(0xFFFFFFFF)
SHIFT_32 = np.uint64(32)
# 2^-32 and 2*pi*2^-32 as float32 numbers (the uint32 -> (0, 1) and -> (0, 2*pi) scales)
UNIT = np.float32(2.0**-32)
ANGLE_UNIT = np.float32(2.0**-32 * 2.0 * np.pi)


def _mul_hi_lo(a: np.ndarray, multiplier: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit product of uint32 words and a 32-bit multiplier, as its (high, low) uint32 halves."""
    product = a.astype(np.uint64) * multiplier
    return (product >> SHIFT_32).astype(np.uint32), (product & LOW_32).astype(np.uint32)


def philox4x32(counter: np.ndarray, key: np.ndarray, rounds: int = ROUNDS) -> np.ndarray:
    """Philox4x32 of `counter` (4, n) uint32 under `key` (2, n) uint32: the (4, n) uint32 output."""
    c0, c1, c2, c3 = (w.copy() for w in counter.astype(np.uint32))
    k0, k1 = (w.copy() for w in key.astype(np.uint32))
    for round_no in range(rounds):
        if round_no:
            k0 += KEY_BUMPS[0]  # wraps modulo 2^32 (uint32 arithmetic)
            k1 += KEY_BUMPS[1]
        hi0, lo0 = _mul_hi_lo(c0, MULTIPLIERS[0])
        hi1, lo1 = _mul_hi_lo(c2, MULTIPLIERS[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3])


def box_muller_sine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """One standard normal value per pair of uint32 words (float32)."""
    u = x * UNIT + UNIT / 2  # in (0, 1): never 0, so the log is finite
    angle = y * ANGLE_UNIT + ANGLE_UNIT / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(angle)).astype(np.float32)


class PhiloxGenerator:
    """A per-image "NV" generator: `randn(shape)` draws the next block of the seed's stream. It stands
    where a torch.Generator would (its `device` is the CPU, where the values are made)."""

    device = torch.device("cpu")

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) % 2**64
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> torch.Tensor:
        count = int(np.prod(shape, dtype=np.int64))
        if count > 2**32:
            raise ValueError(f"an NV noise block holds at most 2^32 values, not {count}")
        counter = np.zeros((4, count), dtype=np.uint32)
        counter[0] = self.offset % 2**32
        counter[2] = np.arange(count, dtype=np.uint64).astype(np.uint32)
        key = np.empty((2, count), dtype=np.uint32)
        key[0] = self.seed & 0xFFFFFFFF
        key[1] = self.seed >> 32
        self.offset += 1
        words = philox4x32(counter, key)
        return torch.from_numpy(box_muller_sine(words[0], words[1]).reshape(tuple(shape)))

    def manual_seed(self, seed: int) -> PhiloxGenerator:
        """torch.Generator's way to start over (A1111's `manual_seed` makes a new one)."""
        self.seed, self.offset = int(seed) % 2**64, 0
        return self
