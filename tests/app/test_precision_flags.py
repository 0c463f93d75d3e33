"""Precision flags through the App: what `select_device` gets, the start-up log, `/sdapi/v1/cmd-flags`
and the infotext of an image made on the CPU bf16 path (forced with --precision half for the demo model)."""

from __future__ import annotations

import logging

import pytest
import torch

from modules.sumi.engine.accel.cpu import has_native_bf16
from modules.sumi.engine.accel.sdpa import NoMemEfficientProcessor
from tests.app_support import generate


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    return make_module_app(
        tmp_path_factory.mktemp("bf16"),
        "--api", "--precision", "half", "--opt-sdp-no-mem-attention",
        fast_path=True, loaded=True,
    )  # fmt: skip


def test_the_suite_runs_fp32_unless_a_test_asks_for_the_fast_path(make_app, tmp_path):
    plain = make_app(tmp_path / "a", start=False)
    assert plain.args.no_half and plain.devices.dtype == torch.float32 and not plain.devices.cpu_fast
    default = make_app(tmp_path / "b", start=False, fast_path=True)
    assert default.devices.cpu_fast == has_native_bf16()
    assert default.devices.dtype == (torch.bfloat16 if has_native_bf16() else torch.float32)


def test_a1111_flags_change_the_device_config(make_app, tmp_path):
    app = make_app(tmp_path, "--opt-channelslast", "--opt-sdp-no-mem-attention", "--no-half-vae", start=False)
    assert app.devices.channels_last and app.devices.sdp_no_mem
    assert app.devices.vae_dtype == torch.float32
    assert not any("has no effect" in n and ("channelslast" in n or "sdp" in n) for n in app.notices)


def test_startup_log_names_the_precision_and_why(make_app, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="modules.sumi.app"):
        make_app(tmp_path, start=False)
    assert any(r.getMessage() == "Precision: --no-half: 32-bit floats everywhere" for r in caplog.records)


def test_forced_fast_path_puts_the_demo_unet_in_bf16_with_sdpa_wrapped(app):
    sd = app.models.active.sd
    assert sd.dtype == torch.bfloat16 and sd.latent_dtype == torch.float32
    assert sd.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    processors = [m.processor for m in sd.unet.modules() if hasattr(m, "processor")]
    assert processors and all(isinstance(p, NoMemEfficientProcessor) for p in processors)


def test_cmd_flags_show_what_was_chosen(client):
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["precision"] == "half" and flags["opt_sdp_no_mem_attention"] is True
    chosen = flags["sumi_precision"]
    assert (chosen["device"], chosen["unet"], chosen["latents"]) == ("cpu", "bf16", "fp32")
    assert chosen["attention"] == "sdpa-no-mem-efficient" and chosen["cpu_bf16_path"] is True
    assert "--precision half" in chosen["reason"] and "UNet and text encoders bf16" in chosen["model"]


def test_infotext_says_bf16_for_an_image_from_the_bf16_unet(client):
    body = {"width": 64, "height": 64, "steps": 2, "seed": 5, "sampler_name": "Euler a"}
    _, info = generate(client, body, "a red circle")
    assert "Precision: bf16" in info["infotexts"][0]
