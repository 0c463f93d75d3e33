"""FP8 weight storage (engine.accel.fp8): weights stored as float8_e4m3fn, upcast per layer; half the
bytes of fp16; LoRA applies on top and restores bit-exactly (with and without the fp16 cache)."""

from __future__ import annotations

import copy

import pytest
import torch

from modules.sumi.engine.accel import fp8
from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, load_network
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1

# fp8 e4m3 keeps 3 mantissa bits (about 6% per weight at worst); through the tiny random UNet the
# output moves by about 9% (relative L2, measured 0.085). The bound says "close, not garbage".
MAX_RELATIVE_ERROR = 0.15

TO_K = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"


@pytest.fixture(scope="module")
def components():
    return tiny_sd1()


def _unet_output(unet: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn((1, 4, 8, 8), generator=generator)
    context = torch.randn((1, 5, 32), generator=generator)
    with torch.no_grad():
        return unet(sample, 10, encoder_hidden_states=context).sample


def _model(components: dict, unet: torch.nn.Module) -> SDModel:
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]  # type: ignore[arg-type]
    return SDModel("SD1", unet, components["vae"], specs, scheduler_config={})  # type: ignore[arg-type]


def test_a_layer_computes_with_its_fp8_weight_upcast_exactly():
    layer = torch.nn.Linear(8, 4)
    reference = copy.deepcopy(layer)
    assert fp8.store_in_fp8(layer) == 1
    assert isinstance(layer, torch.nn.Linear) and layer.weight.dtype == torch.float8_e4m3fn
    x = torch.randn(2, 8)
    rounded = reference.weight.detach().to(torch.float8_e4m3fn).to(torch.float32)
    assert torch.equal(layer(x), torch.nn.functional.linear(x, rounded, reference.bias))


def test_fp8_unet_output_is_within_the_stated_error_and_its_weights_take_half_the_bytes_of_fp16(components):
    unet = components["unet"]
    reference = _unet_output(unet)
    half_bytes = fp8.weight_bytes(copy.deepcopy(unet).to(torch.float16))
    stored = copy.deepcopy(unet)
    count = fp8.store_in_fp8(stored)
    assert count > 50 and fp8.is_fp8(stored) and not fp8.has_fp16_cache(stored)
    assert fp8.weight_bytes(stored) * 2 == half_bytes
    out = _unet_output(stored)
    assert out.dtype == torch.float32  # upcast to the compute dtype (the biases' and the input's)
    error = ((out - reference).norm() / reference.norm()).item()
    assert 0 < error < MAX_RELATIVE_ERROR


@pytest.mark.parametrize("cache", [False, True])
def test_lora_on_fp8_weights_applies_and_restores_exactly(tmp_path, components, cache):
    unet = copy.deepcopy(components["unet"])
    fp8.store_in_fp8(unet, cache_fp16=cache)
    assert fp8.has_fp16_cache(unet) is cache
    model = _model(components, unet)
    path = tmp_path / "lora.safetensors"
    state_dict = tn.lora_state_dict(components, rank=4, alpha=2.0)
    tn.save(path, state_dict)
    layer = unet.get_submodule(TO_K)
    pristine = layer.weight.detach().clone()
    base = (layer.fp16_weight if cache else pristine).to(torch.float32)
    name = "lora_unet_" + TO_K.replace(".", "_")
    delta = 0.7 * (2.0 / 4) * (state_dict[f"{name}.lora_up.weight"] @ state_dict[f"{name}.lora_down.weight"])
    before = _unet_output(unet)
    patcher = NetworkPatcher(model)
    patcher.apply([(load_network(path), 0.7, 0.7)])
    assert layer.weight.dtype == torch.float8_e4m3fn
    assert torch.equal(
        layer.weight.detach().view(torch.uint8), (base + delta).to(torch.float8_e4m3fn).view(torch.uint8)
    )
    assert not torch.equal(_unet_output(unet), before)
    patcher.restore()
    assert torch.equal(layer.weight.detach().view(torch.uint8), pristine.view(torch.uint8))
    assert torch.equal(_unet_output(unet), before)


def test_the_setting_decides_per_family():
    assert fp8.wanted("Enable", is_sdxl=False) and fp8.wanted("Enable", is_sdxl=True)
    assert fp8.wanted("Enable for SDXL", is_sdxl=True) and not fp8.wanted("Enable for SDXL", is_sdxl=False)
    assert not fp8.wanted("Disable", is_sdxl=True)
    with pytest.raises(ValueError, match="fp8_storage"):
        fp8.wanted("yes", is_sdxl=True)
