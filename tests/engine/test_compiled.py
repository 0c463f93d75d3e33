"""The compiled fast path (engine.accel.compiled): one compilation per static shape, reused; in-place LoRA
patches seen without a recompile; compiled == eager within fp tolerance; the eager path where it must be.

Tolerance: fp32 compiled vs eager, max abs difference <= 1e-4 on UNet outputs of about unit size
(inductor reorders sums; measured ~2e-6 on the tiny UNet), and <= 2e-3 on images in [0, 1].

Cost: the inductor tests share one module-scoped compiled entry (tiny UNet, 8x8 latents, batch 2); a cold
inductor compile of it takes ~15-140 s on the 2-core dev machine (warm FX-graph cache: ~10 s). The
shape/cache mechanics use dynamo's `eager` backend: the same tracing, guards and cache (and so the same
compilation count), running the captured graph without code generation.
"""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.accel import compiled
from modules.sumi.engine.accel.compiled import CompileCache, CompileConfig, CompiledUNet
from modules.sumi.engine.extensions import Extension, ExtensionManager, HookPoint, hook
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, network_from_state_dict
from modules.sumi.engine.networks.hypernetwork import (
    apply_hypernetworks,
    hypernetwork_from_dict,
    remove_hypernetworks,
)
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_hypernetworks import write_hypernetwork
from tests.fixtures.tiny_models import tiny_sd1, tiny_sdxl

TOL = 1e-4


def _model(components: dict) -> SDModel:
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]  # pyright: ignore[reportArgumentType]
    return SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})


def _inputs(batch: int = 2, size: int = 8, width: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, size, size, generator=g), torch.randn(batch, 77, width, generator=g)


def _eager(unet, x, t, ctx, added=None) -> torch.Tensor:
    return unet(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added, return_dict=False)[0]


@pytest.fixture(scope="module")
def sd1():
    components = tiny_sd1()
    return components, _model(components)


@pytest.fixture(scope="module")
def inductor(sd1):
    """One inductor-compiled UNet entry (8x8 latents, batch 2), shared by the module's inductor tests."""
    components, model = sd1
    cache = CompileCache(CompileConfig(backend="inductor"))
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    with torch.no_grad():
        cache.unet(model.unet, x, torch.tensor(500.0), ctx, None)
    yield components, model, cache, x, ctx


@torch.no_grad()
def test_inductor_output_equals_eager_and_a_second_call_does_not_recompile(inductor):
    _, model, cache, x, ctx = inductor
    for t in (999.0, 1.0):
        out = cache.unet(model.unet, x, torch.tensor(t), ctx, None)
        assert (out - _eager(model.unet, x, torch.tensor(t), ctx)).abs().max() <= TOL
    assert cache.compiles == 1 and len(cache.entries) == 1


@torch.no_grad()
def test_inductor_sees_a_lora_patched_in_place_without_recompiling(inductor):
    components, model, cache, x, ctx = inductor
    t = torch.tensor(400.0)
    before = cache.unet(model.unet, x, t, ctx, None).clone()
    patcher = NetworkPatcher(model)
    try:
        patcher.apply([(network_from_state_dict(tn.lora_state_dict(components, seed=5), "l"), 1.0, 1.0)])
        patched = cache.unet(model.unet, x, t, ctx, None)
        assert (patched - before).abs().max() > 1e-3  # the LoRA changes the prediction...
        assert (patched - _eager(model.unet, x, t, ctx)).abs().max() <= TOL  # ...as eager sees it
    finally:
        patcher.restore()
    restored = cache.unet(model.unet, x, t, ctx, None)
    assert (restored - before).abs().max() <= TOL
    assert cache.compiles == 1


@pytest.fixture
def traced(sd1):
    """A fresh cache on dynamo's `eager` backend (its tracing and guards without code generation)."""
    return sd1[1], CompileCache(CompileConfig(backend="eager"))


@torch.no_grad()
def test_a_new_shape_compiles_exactly_once_more_and_each_shape_is_reused(traced):
    model, cache = traced
    told: list[str] = []
    cache.notify = told.append
    width = model.unet.config["cross_attention_dim"]
    small, big = _inputs(2, 8, width), _inputs(2, 16, width)
    for step, t in enumerate((900.0, 500.0, 100.0)):
        cache.unet(model.unet, small[0], torch.tensor(t), small[1], None)
        assert cache.compiles == 1, f"step {step}"
    assert told == ["compiling (once): UNet for 8x8 latents, batch 2, float32", ""]  # the first call only
    for t in (900.0, 500.0):
        out = cache.unet(model.unet, big[0], torch.tensor(t), big[1], None)
    assert cache.compiles == 2 and len(cache.entries) == 2
    assert out.shape == big[0].shape
    batch4 = _inputs(4, 8, width)
    cache.unet(model.unet, batch4[0], torch.tensor(10.0), batch4[1], None)
    cache.unet(model.unet, small[0], torch.tensor(10.0), small[1], None)
    assert cache.compiles == 3


@torch.no_grad()
def test_compiled_unet_stands_for_the_module_and_takes_any_timestep_type(traced):
    model, cache = traced
    wrapper = CompiledUNet(model.unet, cache)
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    assert wrapper.config is model.unet.config  # attribute reads go to the module
    for t in (torch.tensor(700), torch.tensor(650.0), 600, 550.5, torch.tensor([500.0])):
        out = wrapper(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        assert (out - _eager(model.unet, x, t, ctx)).abs().max() <= TOL
    assert cache.compiles == 2  # 0-dim and 1-dim timesteps; ints and floats are the same float32 input


@torch.no_grad()
def test_extra_unet_keyword_arguments_run_eager(traced):
    model, cache = traced
    wrapper = CompiledUNet(model.unet, cache)
    x, ctx = _inputs(width=model.unet.config["cross_attention_dim"])
    out = wrapper(
        x, torch.tensor(5.0), encoder_hidden_states=ctx, return_dict=False, cross_attention_kwargs={}
    )
    assert cache.compiles == 0 and not cache.entries
    assert torch.equal(out[0], _eager(model.unet, x, torch.tensor(5.0), ctx))


@torch.no_grad()
def test_sdxl_added_inputs_are_part_of_the_compiled_call():
    components = tiny_sdxl()
    unet = components["unet"]
    cache = CompileCache(CompileConfig(backend="eager"))
    x, ctx = _inputs(width=unet.config["cross_attention_dim"])
    proj = unet.config["projection_class_embeddings_input_dim"] - 6 * unet.config["addition_time_embed_dim"]
    added = {"text_embeds": torch.randn(2, proj), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)}
    out = cache.unet(unet, x, torch.tensor(300.0), ctx, added)
    assert (out - _eager(unet, x, torch.tensor(300.0), ctx, added)).abs().max() <= TOL
    other = {"text_embeds": added["text_embeds"] * 2, "time_ids": added["time_ids"]}
    out = cache.unet(unet, x, torch.tensor(300.0), ctx, other)  # new values, same shapes: no recompile
    assert (out - _eager(unet, x, torch.tensor(300.0), ctx, other)).abs().max() <= TOL
    assert cache.compiles == 1


@torch.no_grad()
def test_vae_decode_compiles_per_latent_shape(sd1):
    vae = sd1[1].vae
    cache = CompileCache(CompileConfig(unet=False, vae_decode=True, backend="eager"))
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    for _ in range(2):
        out = cache.vae_decode(vae, z)
    assert (out - vae.decode(z, return_dict=False)[0]).abs().max() <= TOL
    assert cache.compiles == 1


class _UNetInputs(Extension):
    @hook(HookPoint.UNET_FORWARD)
    def add_inputs(self, batch) -> None:
        batch.unet_kwargs["down_block_additional_residuals"] = None


def test_a_layer_an_extension_rewired_sends_the_job_eager():
    """A captured graph would run without them: a forward set on a layer (Regional Prompter's
    cross-attention, a replaced block's forward) or a forward hook on one; removed, the compiled path is back."""
    model = _model(tiny_sd1())
    compiled.configure(model, CompileConfig(backend="eager"))
    attn2 = next(m for name, m in model.unet.named_modules() if name.endswith("attn2"))
    attn2.forward = lambda x, context=None, mask=None: x
    try:
        reason = compiled.eager_reason(model)
        assert reason is not None and "attn2 has a forward of its own" in reason
        assert compiled.unet_for_job(model) is model.unet
    finally:
        del attn2.forward
    handle = model.unet.mid_block.register_forward_hook(lambda module, args, out: out)
    try:
        assert "mid_block" in (compiled.eager_reason(model) or "")
    finally:
        handle.remove()
    assert compiled.eager_reason(model) is None
    assert isinstance(compiled.unet_for_job(model), CompiledUNet)
    compiled.configure(model, None)


def test_the_job_gets_the_compiled_unet_unless_something_needs_eager(sd1, tmp_path):
    model = _model(tiny_sd1())
    assert compiled.unet_for_job(model) is model.unet  # off
    cache = compiled.configure(model, CompileConfig(backend="eager"))
    assert isinstance(cache, CompileCache)
    job_unet = compiled.unet_for_job(model, ExtensionManager())
    assert isinstance(job_unet, CompiledUNet) and job_unet.module is model.unet
    assert compiled.eager_reason(model, ExtensionManager([_UNetInputs()])) is not None
    assert compiled.unet_for_job(model, ExtensionManager([_UNetInputs()])) is model.unet
    data = write_hypernetwork(tmp_path / "h.pt", dims=(model.unet.config["cross_attention_dim"],))
    apply_hypernetworks(model.unet, [(hypernetwork_from_dict(data), 1.0)])
    try:
        assert compiled.unet_for_job(model) is model.unet
    finally:
        remove_hypernetworks(model.unet)
    assert isinstance(compiled.unet_for_job(model), CompiledUNet)
    model.extra["offload"] = "low"
    assert compiled.unet_for_job(model) is model.unet and compiled.vae_decoder(model) is None
    model.extra["offload"] = "none"
    assert compiled.configure(model, CompileConfig(backend="eager")) is cache  # same config: kept
    assert compiled.configure(model, CompileConfig(backend="eager", vae_decode=True)) is not cache
    assert compiled.vae_decoder(model) is not None
    compiled.configure(model, None)
    assert compiled.unet_for_job(model) is model.unet and compiled.cache_of(model) is None


def test_choices_map_to_configs():
    assert CompileConfig.from_choice("Off") is None
    assert CompileConfig.from_choice("UNet") == CompileConfig(unet=True, vae_decode=False)
    assert CompileConfig.from_choice("UNet + VAE decode") == CompileConfig(unet=True, vae_decode=True)
    with pytest.raises(ValueError, match="unknown compile choice"):
        CompileConfig.from_choice("Everything")


@pytest.mark.cuda
@torch.no_grad()
def test_cuda_graph_replay_equals_eager_in_fp16_and_sees_in_place_weight_changes(sd1):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    import copy

    unet = copy.deepcopy(sd1[1].unet).to("cuda", torch.float16)
    cache = CompileCache(CompileConfig(backend="inductor"))  # CUDA: inductor + CUDA graphs
    x, ctx = (t.to("cuda", torch.float16) for t in _inputs(width=unet.config["cross_attention_dim"]))
    t = torch.tensor(500.0, device="cuda")
    first = cache.unet(unet, x, t, ctx, None)
    for _ in range(3):
        out = cache.unet(unet, x, t, ctx, None)
    assert torch.equal(out, first)
    assert (out.float() - _eager(unet, x, t, ctx).float()).abs().max() <= 2e-2
    weight = unet.conv_in.weight
    weight.add_(0.05)  # as a LoRA patch: the same storage
    replayed = cache.unet(unet, x, t, ctx, None)
    assert (replayed.float() - _eager(unet, x, t, ctx).float()).abs().max() <= 2e-2
    assert (replayed.float() - first.float()).abs().max() > 1e-2
    assert cache.compiles == 1
