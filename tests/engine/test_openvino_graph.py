"""The OpenVINO backend of the compiled fast path (engine.accel.openvino_graph): one tracing per static
shape, reused; the output equals eager within fp tolerance; weights changed in place (a LoRA, an edit
through `.data`) compile the graph again and are seen, weights in new storage are traced again.

Tolerance: fp32 OpenVINO vs eager, max abs difference <= 1e-4 on UNet outputs of about unit size
(measured ~2e-6 on the tiny UNet); bf16 (OpenVINO's bf16 kernels vs PyTorch's) within 5 % of the output's
range. Cost: tracing the tiny UNet takes ~3 s on the 2-core dev machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from modules.sumi.engine.accel import openvino_graph
from modules.sumi.engine.accel.compiled import CompileCache, CompileConfig
from modules.sumi.engine.networks import NetworkPatcher, network_from_state_dict
from tests.engine.test_compiled import _eager, _inputs, _model
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1, tiny_sdxl

pytestmark = pytest.mark.skipif(not openvino_graph.available(), reason="needs openvino (requirements-test)")

TOL = 1e-4


@pytest.fixture(scope="module")
def sd1():
    components = tiny_sd1()
    return components, _model(components)


@pytest.fixture(scope="module")
def traced(sd1):
    """One OpenVINO UNet entry (8x8 latents, batch 2, fp32), shared by the module's fp32 tests."""
    components, model = sd1
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet"))  # pyright: ignore[reportArgumentType]
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    with torch.no_grad():
        cache.unet(model.unet, x, torch.tensor(500.0), ctx, None)
    return components, model, cache, x, ctx


def _graph(cache: CompileCache) -> openvino_graph.OpenVINOGraph:
    (entry,) = cache.entries.values()
    assert entry.failed is None, entry.failed
    assert entry.openvino is not None
    return entry.openvino


@torch.no_grad()
def test_openvino_output_equals_eager_and_a_second_call_does_not_trace_again(traced):
    _, model, cache, x, ctx = traced
    for t in (999.0, 1.0):
        out = cache.unet(model.unet, x, torch.tensor(t), ctx, None)
        assert out.dtype == x.dtype
        assert (out - _eager(model.unet, x, torch.tensor(t), ctx)).abs().max() <= TOL
    assert cache.compiles == 1 and len(cache.entries) == 1
    assert _graph(cache).recompiles == 0


@torch.no_grad()
def test_a_lora_patched_in_place_compiles_again_and_is_seen_then_removed(traced):
    components, model, cache, x, ctx = traced
    t = torch.tensor(400.0)
    before = cache.unet(model.unet, x, t, ctx, None).clone()
    recompiles = _graph(cache).recompiles
    patcher = NetworkPatcher(model)
    try:
        patcher.apply([(network_from_state_dict(tn.lora_state_dict(components, seed=5), "l"), 1.0, 1.0)])
        patched = cache.unet(model.unet, x, t, ctx, None)
        assert (patched - before).abs().max() > 1e-3  # the LoRA changes the prediction...
        assert (patched - _eager(model.unet, x, t, ctx)).abs().max() <= TOL  # ...as eager sees it
        assert _graph(cache).recompiles == recompiles + 1
        cache.unet(model.unet, x, t, ctx, None)
        assert _graph(cache).recompiles == recompiles + 1  # unchanged weights: no new compilation
    finally:
        patcher.restore()
    restored = cache.unet(model.unet, x, t, ctx, None)
    assert (restored - before).abs().max() <= TOL
    assert cache.compiles == 1  # traced once: only compiled again


@torch.no_grad()
def test_an_edit_through_data_bypassing_the_version_counter_is_seen(traced):
    _, model, cache, x, ctx = traced
    t = torch.tensor(300.0)
    weight = model.unet.conv_in.weight
    original = weight.detach().clone()
    before = cache.unet(model.unet, x, t, ctx, None).clone()
    try:
        weight.data.mul_(1.5)
        edited = cache.unet(model.unet, x, t, ctx, None)
        assert (edited - before).abs().max() > 1e-3
        assert (edited - _eager(model.unet, x, t, ctx)).abs().max() <= TOL
    finally:
        weight.data.copy_(original)
    assert (cache.unet(model.unet, x, t, ctx, None) - before).abs().max() <= TOL


@torch.no_grad()
def test_weights_in_new_storage_are_traced_again(sd1):
    components = tiny_sd1()
    model = _model(components)
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet"))  # pyright: ignore[reportArgumentType]
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    t = torch.tensor(500.0)
    cache.unet(model.unet, x, t, ctx, None)
    model.unet.load_state_dict(sd1[1].unet.state_dict(), assign=True)  # new tensors, as a loader does
    out = cache.unet(model.unet, x, t, ctx, None)
    assert (out - _eager(model.unet, x, t, ctx)).abs().max() <= TOL
    assert cache.compiles == 2


@torch.no_grad()
def test_a_bf16_channels_last_unet_runs_in_bf16_within_tolerance():
    components = tiny_sd1()
    model = _model(components)
    model.unet.to(dtype=torch.bfloat16, memory_format=torch.channels_last)  # pyright: ignore[reportCallIssue]
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet"))  # pyright: ignore[reportArgumentType]
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    x, ctx = x.bfloat16(), ctx.bfloat16()
    t = torch.tensor(500.0)
    out = cache.unet(model.unet, x, t, ctx, None)
    assert out.dtype == torch.bfloat16
    eager = _eager(model.unet, x, t, ctx).float()
    assert (out.float() - eager).abs().max() <= 0.05 * (eager.max() - eager.min())


@torch.no_grad()
def test_sdxl_added_inputs_are_graph_inputs_not_constants():
    components = tiny_sdxl()
    unet = components["unet"]
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet"))  # pyright: ignore[reportArgumentType]
    x, ctx = _inputs(width=unet.config["cross_attention_dim"])
    proj = unet.config["projection_class_embeddings_input_dim"] - 6 * unet.config["addition_time_embed_dim"]
    added = {"text_embeds": torch.randn(2, proj), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)}
    out = cache.unet(unet, x, torch.tensor(300.0), ctx, added)
    assert (out - _eager(unet, x, torch.tensor(300.0), ctx, added)).abs().max() <= TOL
    other = {"text_embeds": added["text_embeds"] * 2, "time_ids": added["time_ids"] + 8}
    out = cache.unet(unet, x, torch.tensor(300.0), ctx, other)  # new values, same shapes: same graph
    assert (out - _eager(unet, x, torch.tensor(300.0), ctx, other)).abs().max() <= TOL
    assert cache.compiles == 1


@torch.no_grad()
def test_vae_decode_runs_per_latent_shape(sd1):
    _, model = sd1
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet + VAE decode"))  # pyright: ignore[reportArgumentType]
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = cache.vae_decode(model.vae, z)
    assert out.shape == (1, 3, 64, 64)
    assert (out - model.vae.decode(z, return_dict=False)[0]).abs().max() <= TOL  # pyright: ignore[reportIndexIssue]
    cache.vae_decode(model.vae, z)
    assert cache.compiles == 1


def test_openvino_choices_map_to_its_backend():
    assert CompileConfig.from_choice("OpenVINO: UNet") == CompileConfig(backend="openvino")
    assert CompileConfig.from_choice("OpenVINO: UNet + VAE decode") == CompileConfig(
        vae_decode=True, backend="openvino"
    )


@torch.no_grad()
def test_a_gpu_tensor_is_refused_and_runs_eager(sd1, monkeypatch):
    """OpenVINO's CPU plugin cannot take CUDA tensors: the entry fails once, with the reason, and eager runs."""
    _, model = sd1
    cache = CompileCache(CompileConfig.from_choice("OpenVINO: UNet"))  # pyright: ignore[reportArgumentType]
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    monkeypatch.setattr(openvino_graph, "_device_type", lambda tensor: "cuda")
    out = cache.unet(model.unet, x, torch.tensor(500.0), ctx, None)
    (entry,) = cache.entries.values()
    assert entry.failed is not None and "CPU only" in entry.failed
    assert torch.equal(out, _eager(model.unet, x, torch.tensor(500.0), ctx))


def test_using_openvino_sends_no_telemetry_and_writes_nothing_to_the_home_folder(tmp_path):
    """`import openvino` alone would send a usage event and create ~/intel/openvino_ga_cid."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from modules.sumi.engine.accel.openvino_graph import OpenVINOGraph, _core\n"
        "lin = torch.nn.Linear(4, 4)\n"
        "out = OpenVINOGraph(lambda m, x: m(x))(lin, torch.ones(2, 4))\n"
        "assert torch.allclose(out, lin(torch.ones(2, 4)), atol=1e-5)\n"
        "import sys; assert sys.modules['openvino_telemetry'] is None\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("CI", None)  # OpenVINO stays quiet in CI anyway; the user's machine is not CI
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
