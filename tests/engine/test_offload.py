"""--medvram / --lowvram offloading (engine.accel.offload), with the CPU standing in for the GPU: the
images are bit-exact with offloading off, and the offloader's own record shows the policy (only the
part in use is resident). The CUDA tests check that peak VRAM falls and images stay within fp16
tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.sumi.engine import generate as engine
from modules.sumi.engine.accel import offload
from modules.sumi.engine.checkpoint import load_checkpoint
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, load_network
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1


def _request() -> engine.BatchRequest:
    return engine.BatchRequest(
        prompts=["a red circle"],
        negative_prompts=[""],
        seeds=[7],
        width=32,
        height=32,
        steps=2,
        sampler="Euler a",
    )


def _image(model) -> np.ndarray:
    return np.asarray(engine.generate(model, _request(), progress_bar=False).images[0])


@pytest.fixture(scope="module")
def sd1(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0])
    return model, _image(model)


@pytest.fixture
def watch():
    """Record (unit, resident units, arriving units) each time a unit's module starts running, read
    from the offloader's own state; the hooks run after the offloader's."""
    handles = []

    def start(offloader: offload.Offloader) -> list[tuple[str, list[str], list[str]]]:
        seen: list[tuple[str, list[str], list[str]]] = []
        for unit in offloader.units.values():
            modules = [unit.module]
            if unit.name == "vae":
                modules = [m for m in unit.module.children() if any(True for _ in m.parameters())]
            for module in modules:

                def record(_m, _a, name=unit.name) -> None:
                    seen.append((name, offloader.resident(), offloader.arriving()))

                handles.append(module.register_forward_pre_hook(record))
        return seen

    yield start
    for handle in handles:
        handle.remove()


def _snapshot(model: SDModel) -> dict[str, torch.Tensor]:
    modules = {"unet": model.unet, **{f"te{i}": s.model for i, s in enumerate(model.text_encoders)}}
    return {f"{p}.{k}": v.detach().clone() for p, m in modules.items() for k, v in m.state_dict().items()}


def _outputs(model: SDModel) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.tensor([[49406, 320, 1125, 539, 49407]])
    with torch.no_grad():
        hidden = model.text_encoders[0].model(ids).last_hidden_state
        sample = torch.randn((1, 4, 8, 8), generator=generator)
        context = torch.randn((1, 5, 32), generator=generator)
        eps = model.unet(sample, 10, encoder_hidden_states=context).sample
    return hidden, eps


def test_policy_follows_the_a1111_flags():
    assert offload.choose_policy(medvram=False, lowvram=False, medvram_sdxl=False, is_sdxl=True) == "none"
    assert offload.choose_policy(medvram=True, lowvram=False, medvram_sdxl=False, is_sdxl=False) == "med"
    assert offload.choose_policy(medvram=False, lowvram=False, medvram_sdxl=True, is_sdxl=True) == "med"
    assert offload.choose_policy(medvram=False, lowvram=False, medvram_sdxl=True, is_sdxl=False) == "none"
    assert offload.choose_policy(medvram=True, lowvram=True, medvram_sdxl=True, is_sdxl=False) == "low"


def test_medvram_keeps_only_the_part_in_use_resident_and_images_are_bit_exact(sd1, watch):
    model, reference = sd1
    offloader = offload.attach(model, "med", "cpu", "cpu")
    try:
        assert offloader is not None and model.extra["offload"] == "med"
        assert model.device == torch.device("cpu")
        seen = watch(offloader)
        image = _image(model)
        assert np.array_equal(image, reference)
        assert {name for name, _, _ in seen} == {"text_encoder_0", "unet", "vae"}
        assert all(resident == [name] for name, resident, _ in seen)
        assert offloader.resident() == ["vae"]  # the last part used stays until another is needed
        moves = [(m.unit, m.to) for m in offloader.moves]
        assert moves[:3] == [
            ("text_encoder_0", "compute"),
            ("text_encoder_0", "storage"),
            ("unet", "compute"),
        ]
        assert offloader.report()["peak_resident_bytes"] == max(u.nbytes for u in offloader.units.values())
    finally:
        offload.detach(model)
    assert model.extra["offload"] == "none" and offload.offloader_of(model) is None


def test_lowvram_streams_the_unet_one_block_at_a_time_prefetching_the_next(sd1, watch):
    model, reference = sd1
    offloader = offload.attach(model, "low", "cpu", "cpu", prefetch=True)
    try:
        assert offloader is not None
        blocks = [n for n, u in offloader.units.items() if u.group == offload.UNET_GROUP]
        assert {
            "unet.conv_in",
            "unet.time_embedding",
            "unet.down_blocks.0",
            "unet.mid_block",
            "unet.up_blocks.1",
        } <= set(blocks)
        seen = watch(offloader)
        image = _image(model)
        assert np.array_equal(image, reference)
        during_unet = [(n, r, a) for n, r, a in seen if n.startswith("unet.")]
        assert {name for name, _, _ in during_unet} == set(blocks)
        assert all(resident == [name] for name, resident, _ in during_unet)  # only the running block
        order = offloader._order  # the call order, learnt on the first call
        later = during_unet[len(order) :]
        assert later  # the second step: each block's successor is on its way while it runs
        for name, _, arriving in later:
            index = order.index(name)
            assert arriving == ([order[index + 1]] if index + 1 < len(order) else [])
        assert not any(name.startswith("unet.") for name in offloader.resident())  # none left after a call
        calls = sum(1 for m in offloader.moves if m.unit == "unet.conv_in" and m.to == "compute")
        assert calls == 2  # one per UNet call (2 steps, CFG batched): every block streamed each time
    finally:
        offload.detach(model)


def test_lora_patches_and_restores_exactly_under_lowvram(tmp_path):
    components = tiny_sd1()
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]  # type: ignore[arg-type]
    model = SDModel("SD1", components["unet"], components["vae"], specs, scheduler_config={})
    path = tmp_path / "lora.safetensors"
    tn.save(path, tn.lora_state_dict(components, locon=True, rank=4, alpha=2.0))
    network = load_network(path)
    before = _snapshot(model)
    plain = NetworkPatcher(model)
    plain.apply([(network, 0.8, 0.8)])
    patched_outputs = _outputs(model)
    plain.restore()
    offload.attach(model, "low", "cpu", "cpu")
    try:
        patcher = NetworkPatcher(model)
        patcher.apply([(network, 0.8, 0.8)])
        outputs = _outputs(model)
        assert all(torch.equal(a, b) for a, b in zip(outputs, patched_outputs, strict=True))
        patcher.restore()
    finally:
        offload.detach(model)
    assert all(torch.equal(v, before[k]) for k, v in _snapshot(model).items())


def test_a_unet_with_weights_outside_its_blocks_is_refused():
    unet = torch.nn.Module()
    unet.register_parameter("scale", torch.nn.Parameter(torch.ones(1)))
    with pytest.raises(ValueError, match="cannot be streamed"):
        offload.Offloader("cpu", "cpu", "low").add_streamed_unet(unet)


# -- CUDA -----------------------------------------------------------------------------------------


def _cuda_peak(model, policy: str) -> tuple[np.ndarray, int]:
    offload.detach(model)
    if policy == "none":
        model.to("cuda", torch.float16)
    else:
        model.to("cpu", torch.float16)
        offload.attach(model, policy, "cpu", "cuda")  # type: ignore[arg-type]
    model.execution_device = torch.device("cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    image = _image(model)
    peak = torch.cuda.max_memory_allocated()
    offload.detach(model)
    model.to("cpu")
    return image, peak


@pytest.mark.parametrize("policy", ["med", "low"])
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_offloading_lowers_peak_vram_and_images_stay_within_fp16_tolerance(tiny_sd1_ckpt, policy):
    model = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16)
    full, full_peak = _cuda_peak(model, "none")
    image, peak = _cuda_peak(model, policy)
    assert peak < full_peak
    assert np.abs(image.astype(int) - full.astype(int)).max() <= 2


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_lowvram_on_cuda_stores_pinned_and_keeps_a_patch_made_while_resident(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16)
    offloader = offload.attach(model, "med", "cpu", "cuda")
    assert offloader is not None and offloader.pinned
    assert all(p.is_pinned() for p in model.unet.parameters())
    _image(model)  # the VAE is resident after decoding
    weight = model.vae.decoder.conv_out.weight
    assert weight.is_cuda
    with torch.no_grad():
        weight.add_(1.0)
    expected = weight.detach().cpu().clone()
    offloader.send_everything_to_storage()
    assert not weight.is_cuda and weight.is_pinned() and torch.equal(weight.detach(), expected)
    offload.detach(model)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_parked_model_waits_in_pinned_ram(tiny_sd1_ckpt):
    model = load_checkpoint(tiny_sd1_ckpt[0], dtype=torch.float16).to("cuda", torch.float16)
    offload.park_in_host_memory(model, pinned=True)
    assert offload.is_pinned(model)
    before = _image(model.to("cuda", torch.float16))
    offload.park_in_host_memory(model, pinned=True)
    assert np.array_equal(_image(model.to("cuda", torch.float16)), before)


def test_a_part_recast_while_in_use_keeps_its_new_dtype_when_sent_back():
    """The VAE's fp32 fallback recasts it while it is on the compute device; eviction keeps that."""
    layer = torch.nn.Linear(4, 4)
    offloader = offload.Offloader("cpu", "cpu", "med")
    offloader.add("vae", layer)
    layer(torch.ones(1, 4))
    assert offloader.resident() == ["vae"]
    layer.to(torch.float64)
    offloader.send_everything_to_storage()
    assert offloader.resident() == [] and layer.weight.dtype == torch.float64
    assert layer(torch.ones(1, 4, dtype=torch.float64)).dtype == torch.float64
