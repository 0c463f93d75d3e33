"""Which dtypes and memory layout each part of the model runs in, from the device and the user's flags.

The rules (one function, `choose_precision`, so the start-up log, the API and the tests agree):

- `--no-half` or `--precision full`: 32-bit floats everywhere, on every device.
- CUDA: fp16 weights (bf16 with `--bf16`), the VAE in fp32 with `--no-half-vae`. Latents between steps
  stay in the UNet's dtype unless `--upcast-sampling`, which keeps them (and the sampler's arithmetic,
  ControlNet hints aside) in fp32 and casts only at the UNet's input and output. channels_last with
  `--opt-channelslast` (as A1111; unmeasured on GPUs here, so not the default).
- CPU with native bf16 (AVX512-BF16, AMX-BF16, Arm BF16) and a model large enough to gain from it:
  bf16 weights in channels_last for the UNet, text encoders and VAE (the VAE stays fp32 with
  `--no-half-vae`); latents and the sampler stay fp32, so schedulers step exactly as in fp32.
- CPU without native bf16: fp32 (emulated bf16 is slower than fp32 there).
- `--precision half` on the CPU: the bf16 path whatever the CPU and the model's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from modules.sumi.engine.accel.cpu import bf16_flags, cpu_flags

# Below this many UNet parameters the CPU runs the UNet and text encoders in fp32: on a tiny UNet the
# per-layer reorders cost more than bf16 saves (measured: docs/performance/cpu-fast.md; demo UNet 1M,
# SD1.5 860M parameters). The VAE decodes at full image resolution and gains from bf16 at any width.
MIN_BF16_UNET_PARAMS = 20_000_000


@dataclass(frozen=True)
class PrecisionFlags:
    """The A1111 flags that decide precision (argparse dests of the same names)."""

    no_half: bool = False
    no_half_vae: bool = False
    precision: str = "autocast"  # "full" | "half" | "autocast"
    bf16: bool = False
    upcast_sampling: bool = False
    opt_channelslast: bool = False

    @property
    def full(self) -> bool:
        return self.no_half or self.precision == "full"


@dataclass(frozen=True)
class Precision:
    """dtype: UNet, text encoders, ControlNet; sampling_dtype: latents between steps and into the VAE."""

    dtype: torch.dtype
    vae_dtype: torch.dtype
    sampling_dtype: torch.dtype
    channels_last: bool
    reason: str
    cpu_fast: bool = False  # the CPU bf16 path (the size rule may still keep a small model in fp32)
    forced: bool = False  # --precision half: the CPU bf16 path whatever the CPU and the model's size


def choose_precision(
    device_type: str, flags: PrecisionFlags, *, cpu_features: Iterable[str] | None = None
) -> Precision:
    """The precision for `device_type` ("cuda", "cpu", ...); `cpu_features` defaults to /proc/cpuinfo's."""
    fp32 = torch.float32
    if flags.full:
        why = "--no-half" if flags.no_half else "--precision full"
        return Precision(fp32, fp32, fp32, flags.opt_channelslast, f"{why}: 32-bit floats everywhere")
    if device_type == "cuda":
        dtype = torch.bfloat16 if flags.bf16 else torch.float16
        vae = fp32 if flags.no_half_vae else dtype
        sampling = fp32 if flags.upcast_sampling else dtype
        name = dtype_name(dtype)
        parts = [f"CUDA: {name} weights", f"VAE {dtype_name(vae)}", f"latents {dtype_name(sampling)}"]
        if flags.opt_channelslast:
            parts.append("channels_last")
        return Precision(dtype, vae, sampling, flags.opt_channelslast, ", ".join(parts))
    if device_type != "cpu":
        return Precision(fp32, fp32, fp32, False, f"{device_type}: 32-bit floats")
    found = bf16_flags(cpu_flags() if cpu_features is None else cpu_features)
    forced = flags.precision == "half"
    if not found and not forced:
        return Precision(
            fp32, fp32, fp32, flags.opt_channelslast,
            "CPU without native bf16 (no avx512_bf16, amx_bf16 or bf16 flag): 32-bit floats",
        )  # fmt: skip
    vae = fp32 if flags.no_half_vae else torch.bfloat16
    why = "--precision half" if forced else f"CPU with native bf16 ({', '.join(found)})"
    reason = (
        f"{why}: bf16 weights and channels_last for the UNet, text "
        f"encoders and {'(not) the VAE: --no-half-vae keeps it fp32' if flags.no_half_vae else 'VAE'}; "
        f"latents and the sampler fp32 (--no-half for fp32 everywhere)"
    )
    return Precision(torch.bfloat16, vae, fp32, True, reason, cpu_fast=True, forced=forced)


def fits_size_rule(unet: torch.nn.Module) -> bool:
    """Whether a UNet is large enough for the CPU bf16 path to be faster than fp32."""
    return sum(p.numel() for p in unet.parameters()) >= MIN_BF16_UNET_PARAMS


def dtype_name(dtype: torch.dtype) -> str:
    """ "fp32", "fp16", "bf16" (as A1111 and the UI name them)."""
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(
        dtype, str(dtype).removeprefix("torch.")
    )
