"""What this CPU can do fast: native bfloat16 (AVX512-BF16, AMX-BF16 on x86; BF16 on Arm).

PyTorch's oneDNN kernels run bf16 convolutions and matrix products at about 4x the fp32 speed on such
CPUs; without native bf16 the same kernels emulate it and are slower than fp32, so Sumi only picks
bf16 when one of these flags is present.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# /proc/cpuinfo flag names for hardware bf16 arithmetic: x86 (AVX512-BF16, AMX tiles) and aarch64 (FEAT_BF16)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags the kernel reports for the first CPU ("flags" on x86, "Features" on Arm);
    empty where there is no /proc/cpuinfo (macOS, Windows)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def bf16_flags(flags: Iterable[str]) -> list[str]:
    """The flags among `flags` that mean native bf16 arithmetic (sorted, for messages)."""
    return sorted(BF16_FLAGS.intersection(flags))


def has_native_bf16(flags: Iterable[str] | None = None) -> bool:
    """True when the CPU computes bf16 in hardware (`flags` defaults to this machine's)."""
    return bool(bf16_flags(cpu_flags() if flags is None else flags))
