"""Which device and dtypes to run on, from the user's flags (no global state)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    attention: str = "sdpa"  # "sdpa" | "xformers"

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def select_device(
    *,
    use_cpu: bool = False,
    device_id: int | None = None,
    no_half: bool = False,
    no_half_vae: bool = False,
    precision: str = "autocast",
    bf16: bool = False,
) -> DeviceConfig:
    """CUDA in fp16 when available (bf16 or fp32 by flag), else CPU in fp32."""
    if use_cpu or not torch.cuda.is_available():
        return DeviceConfig(torch.device("cpu"), torch.float32, torch.float32)
    device = torch.device("cuda", device_id or 0)
    if no_half or precision == "full":
        dtype = torch.float32
    else:
        dtype = torch.bfloat16 if bf16 else torch.float16
    vae_dtype = torch.float32 if no_half_vae else dtype
    return DeviceConfig(device, dtype, vae_dtype)


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
