"""Which precision each device and flag set gets (the decision function, with given CPU flag sets)."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.accel.cpu import cpu_flags, has_native_bf16
from modules.sumi.engine.accel.precision import PrecisionFlags, choose_precision
from modules.sumi.engine.devices import select_device

ZEN4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
SAPPHIRE_RAPIDS = frozenset({"avx512f", "amx_bf16", "amx_tile", "avx512_bf16"})
GRAVITON3 = frozenset({"fp", "asimd", "sve", "bf16", "i8mm"})
SKYLAKE = frozenset({"avx2", "avx512f", "avx512bw"})
bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32


def test_cpuinfo_flags_are_read_from_the_flags_or_features_line(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx512f avx512_bf16\n\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\nCPU part\t: 0xd40\n")
    assert cpu_flags(x86) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("flags", "native"),
    [(ZEN4, True), (SAPPHIRE_RAPIDS, True), (GRAVITON3, True), (SKYLAKE, False), (frozenset(), False)],
)
def test_native_bf16_needs_a_hardware_bf16_flag(flags, native):
    assert has_native_bf16(flags) is native


def test_a_cpu_with_native_bf16_gets_bf16_weights_channels_last_and_fp32_latents():
    chosen = choose_precision("cpu", PrecisionFlags(), cpu_features=ZEN4)
    assert (chosen.dtype, chosen.vae_dtype, chosen.sampling_dtype) == (bf16, bf16, fp32)
    assert chosen.channels_last and chosen.cpu_fast
    assert "avx512_bf16" in chosen.reason


def test_a_cpu_without_native_bf16_stays_fp32_and_says_why():
    chosen = choose_precision("cpu", PrecisionFlags(), cpu_features=SKYLAKE)
    assert (chosen.dtype, chosen.vae_dtype, chosen.sampling_dtype) == (fp32, fp32, fp32)
    assert not chosen.cpu_fast and not chosen.channels_last
    assert "without native bf16" in chosen.reason


@pytest.mark.parametrize("flags", [PrecisionFlags(no_half=True), PrecisionFlags(precision="full")])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_no_half_and_precision_full_keep_fp32_everywhere(flags, device):
    chosen = choose_precision(device, flags, cpu_features=ZEN4)
    assert (chosen.dtype, chosen.vae_dtype, chosen.sampling_dtype) == (fp32, fp32, fp32)
    assert not chosen.cpu_fast and not chosen.channels_last


def test_no_half_vae_keeps_only_the_vae_fp32_on_the_cpu_fast_path():
    chosen = choose_precision("cpu", PrecisionFlags(no_half_vae=True), cpu_features=ZEN4)
    assert (chosen.dtype, chosen.vae_dtype) == (bf16, fp32)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (PrecisionFlags(), (fp16, fp16, fp16, False)),
        (PrecisionFlags(bf16=True), (bf16, bf16, bf16, False)),
        (PrecisionFlags(no_half_vae=True), (fp16, fp32, fp16, False)),
        (PrecisionFlags(upcast_sampling=True), (fp16, fp16, fp32, False)),
        (PrecisionFlags(opt_channelslast=True), (fp16, fp16, fp16, True)),
    ],
)
def test_cuda_defaults_and_a1111_flags(flags, expected):
    chosen = choose_precision("cuda", flags)
    assert (chosen.dtype, chosen.vae_dtype, chosen.sampling_dtype, chosen.channels_last) == expected
    assert not chosen.cpu_fast


def test_select_device_turns_flags_into_the_device_config():
    config = select_device(use_cpu=True, cpu_features=ZEN4, opt_sdp_no_mem_attention=True)
    assert config.device.type == "cpu" and config.dtype == bf16 and config.latent_dtype == fp32
    assert config.cpu_fast and config.channels_last and config.sdp_no_mem
    summary = config.summary()
    assert summary["unet"] == "bf16" and summary["latents"] == "fp32"
    assert summary["attention"] == "sdpa-no-mem-efficient"
    plain = select_device(use_cpu=True, cpu_features=ZEN4, no_half=True)
    assert (plain.dtype, plain.vae_dtype, plain.latent_dtype, plain.cpu_fast) == (fp32, fp32, fp32, False)


def test_precision_half_forces_the_cpu_bf16_path_even_without_native_bf16():
    chosen = choose_precision("cpu", PrecisionFlags(precision="half"), cpu_features=SKYLAKE)
    assert chosen.dtype == bf16 and chosen.cpu_fast and chosen.forced
    assert "--precision half" in chosen.reason
