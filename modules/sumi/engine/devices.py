"""Which device and dtypes to run on, from the user's flags (no global state)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modules.sumi.engine.accel.precision import PrecisionFlags, choose_precision, dtype_name


@dataclass(frozen=True)
class DeviceConfig:
    """Where and how the model runs. `sampling_dtype` None: latents in `dtype`. `cpu_fast`: the CPU
    bf16 path, which a model below the size rule (`accel.precision.fits_size_rule`) runs in fp32."""

    device: torch.device
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    attention: str = "sdpa"  # "sdpa" | "xformers"
    sampling_dtype: torch.dtype | None = None
    channels_last: bool = False
    sdp_no_mem: bool = False  # --opt-sdp-no-mem-attention: SDPA without the memory-efficient kernel
    cpu_fast: bool = False
    cpu_fast_forced: bool = False  # --precision half: no size rule
    reason: str = ""  # one line for the start-up log: the precision chosen and why

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def latent_dtype(self) -> torch.dtype:
        return self.sampling_dtype or self.dtype

    def summary(self) -> dict[str, object]:
        """What was chosen, as plain values (the API's `sumi_precision`)."""
        return {
            "device": str(self.device),
            "unet": dtype_name(self.dtype),
            "vae": dtype_name(self.vae_dtype),
            "latents": dtype_name(self.latent_dtype),
            "channels_last": self.channels_last,
            "attention": self.attention + ("-no-mem-efficient" if self.sdp_no_mem else ""),
            "cpu_bf16_path": self.cpu_fast,
            "reason": self.reason,
        }


def select_device(
    *,
    use_cpu: bool = False,
    device_id: int | None = None,
    no_half: bool = False,
    no_half_vae: bool = False,
    precision: str = "autocast",
    bf16: bool = False,
    upcast_sampling: bool = False,
    opt_channelslast: bool = False,
    opt_sdp_no_mem_attention: bool = False,
    cpu_features: frozenset[str] | None = None,
) -> DeviceConfig:
    """CUDA in fp16 when available (bf16 or fp32 by flag); else the CPU, in bf16 where it computes bf16
    natively, fp32 otherwise (`accel.precision` has the rules; `cpu_features` defaults to this CPU's)."""
    cuda = not use_cpu and torch.cuda.is_available()
    device = torch.device("cuda", device_id or 0) if cuda else torch.device("cpu")
    flags = PrecisionFlags(no_half, no_half_vae, precision, bf16, upcast_sampling, opt_channelslast)
    chosen = choose_precision(device.type, flags, cpu_features=cpu_features)
    return DeviceConfig(
        device,
        chosen.dtype,
        chosen.vae_dtype,
        sampling_dtype=chosen.sampling_dtype,
        channels_last=chosen.channels_last,
        sdp_no_mem=opt_sdp_no_mem_attention,
        cpu_fast=chosen.cpu_fast,
        cpu_fast_forced=chosen.forced,
        reason=chosen.reason,
    )


def xformers_available() -> bool:
    try:
        import xformers.ops  # noqa: F401  # pyright: ignore[reportMissingImports]  # optional, CUDA only
    except Exception:
        return False
    return True


def peak_memory_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
