"""Put a loaded model on its device in the dtypes and memory layout the DeviceConfig chose."""

from __future__ import annotations

import torch

from modules.sumi.engine.accel.precision import dtype_name, fits_size_rule
from modules.sumi.engine.accel.sdpa import use_sdpa_without_mem_efficient
from modules.sumi.engine.devices import DeviceConfig
from modules.sumi.engine.model import FP8_DTYPES, SDModel


def load_dtype(config: DeviceConfig) -> torch.dtype:
    """The dtype to read a checkpoint in: fp32 on the CPU bf16 path, whose size rule may keep a small
    model in fp32 (reading it in bf16 first would round its weights); else the compute dtype."""
    return torch.float32 if config.cpu_fast else config.dtype


def place(
    sd: SDModel, config: DeviceConfig, *, size_rule: bool = True, device: torch.device | None = None
) -> str:
    """Move `sd` to `config.device` in the chosen dtypes and layout; returns one line saying what was
    done (also kept in `sd.extra["precision"]`). Sets `sd.sampling_dtype` and `sd.extra` "channels_last" and "vae_dtype". `size_rule=False` (the
    benches) puts even a tiny model on the CPU bf16 path. `device`: where the weights are stored when it
    is not the compute device (--medvram/--lowvram keep them in RAM; the offloader moves them)."""
    dtype, vae_dtype, sampling, channels_last = (
        config.dtype,
        config.vae_dtype,
        config.latent_dtype,
        config.channels_last,
    )
    note = ""
    unet_layout = channels_last
    if config.cpu_fast and size_rule and not config.cpu_fast_forced and not fits_size_rule(sd.unet):
        dtype = sampling = torch.float32
        unet_layout = False
        note = " (a UNet this small runs faster in fp32 than in bf16 on the CPU; its VAE does not)"
    if any(p.dtype in FP8_DTYPES for p in sd.unet.parameters()):
        unet_layout = False  # fp8-stored weights are upcast per layer; their layout stays as stored
    sd.to(device or config.device, dtype, vae_dtype=vae_dtype)
    for module, last in ((sd.unet, unet_layout), (sd.vae, channels_last)):
        layout = torch.channels_last if last else torch.contiguous_format
        module.to(memory_format=layout)  # pyright: ignore[reportCallIssue, reportArgumentType]
    if config.sdp_no_mem:
        use_sdpa_without_mem_efficient(sd.unet)
        use_sdpa_without_mem_efficient(sd.vae)
    sd.sampling_dtype = sampling
    sd.extra["channels_last"] = unet_layout
    sd.extra["vae_dtype"] = vae_dtype
    layouts = [name for name, last in (("UNet", unet_layout), ("VAE", channels_last)) if last]
    text = (
        f"UNet and text encoders {dtype_name(dtype)}, VAE {dtype_name(vae_dtype)}, latents "
        f"{dtype_name(sampling)}{', channels_last ' + ' and '.join(layouts) if layouts else ''}{note}"
    )
    sd.extra["precision"] = text
    return text


def precision_infotext(sd: SDModel) -> str | None:
    """The infotext's "Precision" value: "bf16" when the UNet computed in bf16 (its images differ a
    little from fp16/fp32 ones with the same seed), else None (A1111 writes no such key)."""
    return "bf16" if sd.dtype == torch.bfloat16 else None
