"""LoRA craft: a LoRA extracted from two models turns the first into the second; a resized LoRA is each
layer's best approximation at the new rank; baking leaves the LoRA's deltas in the weights."""

from __future__ import annotations

import copy

import pytest
import torch

from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import NetworkPatcher, network_from_state_dict
from modules.sumi.engine.networks.adapters import LoRA
from modules.sumi.engine.networks.lora_tools import bake_loras, extract_lora, low_rank, resize_lora
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1


def _model(components: dict) -> SDModel:
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]
    return SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})


def _weights(model: SDModel) -> dict[str, torch.Tensor]:
    out = {f"unet.{k}": v.clone() for k, v in model.unet.state_dict().items()}
    out.update({f"te0.{k}": v.clone() for k, v in model.text_encoders[0].model.state_dict().items()})
    return out


@pytest.fixture(scope="module")
def base():
    return tiny_sd1()


def test_low_rank_is_exact_at_full_rank_and_optimal_below_it():
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(12, 3, generator=generator) @ torch.randn(3, 20, generator=generator)
    up, down = low_rank(matrix, 3)
    torch.testing.assert_close(up @ down, matrix, rtol=1e-4, atol=1e-5)
    full = torch.randn(10, 8, generator=generator)
    singular = torch.linalg.svdvals(full)
    up, down = low_rank(full, 2)
    error = torch.linalg.norm(full - up @ down)
    torch.testing.assert_close(error, singular[2:].square().sum().sqrt(), rtol=1e-4, atol=1e-5)


def test_an_extracted_lora_turns_the_base_model_into_the_tuned_one(base):
    state = tn.lora_state_dict(base, locon=True, rank=3, alpha=3.0, seed=4)
    tuned_components = copy.deepcopy(base)
    tuned = _model(tuned_components)
    NetworkPatcher(tuned).apply([(network_from_state_dict(state, "teacher"), 1.0, 1.0)])
    extracted = extract_lora(_model(copy.deepcopy(base)), tuned, rank=3, conv_rank=3)
    assert any(k.startswith("lora_te_") for k in extracted) and any(
        k.startswith("lora_unet_") for k in extracted
    )
    assert {k.rsplit(".", 2)[0] for k in extracted if k.endswith("lora_up.weight")} == {
        k.rsplit(".", 2)[0] for k in state if k.endswith("lora_up.weight")
    }  # exactly the changed layers, under kohya's names
    student = _model(copy.deepcopy(base))
    patcher = NetworkPatcher(student)
    (result,) = patcher.apply([(network_from_state_dict(extracted, "student"), 1.0, 1.0)])
    assert result.unmatched == []
    got, want = _weights(student), _weights(tuned)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)


def test_without_conv_rank_the_convolutions_are_left_out(base):
    state = tn.lora_state_dict(base, locon=True, rank=2, seed=5)
    tuned = _model(copy.deepcopy(base))
    NetworkPatcher(tuned).apply([(network_from_state_dict(state, "t"), 1.0, 1.0)])
    extracted = extract_lora(_model(copy.deepcopy(base)), tuned, rank=2)
    assert extracted and not any("resnets" in k for k in extracted)


def test_resizing_keeps_each_layers_best_approximation(base):
    network = network_from_state_dict(tn.lora_state_dict(base, locon=True, rank=6, alpha=3.0, seed=6), "big")
    same = network_from_state_dict(resize_lora(network, 5), "same")
    small = network_from_state_dict(resize_lora(network, 2), "small")
    assert set(same.layers) == set(network.layers) == set(small.layers)
    for name in network.layers:
        original, kept, reduced = (LoRA(n.layers[name]) for n in (network, same, small))
        shape = torch.Size((original.up.shape[0], *original.down.shape[1:]))
        delta = original.delta(torch.zeros(shape))
        kept_up, kept_down = low_rank(delta.reshape(shape[0], -1), 5)
        torch.testing.assert_close(
            kept.delta(torch.zeros(shape)).reshape(shape[0], -1), kept_up @ kept_down, rtol=1e-4, atol=1e-6
        )
        assert reduced.rank == 2 and reduced.scale == 1.0
        up, down = low_rank(delta.reshape(shape[0], -1), 2)
        torch.testing.assert_close(
            reduced.delta(torch.zeros(shape)).reshape(shape[0], -1), up @ down, rtol=1e-4, atol=1e-6
        )


def test_baking_leaves_the_deltas_in_the_weights(base):
    model = _model(copy.deepcopy(base))
    network = network_from_state_dict(tn.lora_state_dict(base, seed=7), "baked")
    reference = _model(copy.deepcopy(base))
    NetworkPatcher(reference).apply([(network, 0.5, 0.8)])
    assert bake_loras(model, [(network, 0.5, 0.8)]) == []
    NetworkPatcher(model).restore()  # a fresh patcher has nothing to undo
    assert all(
        torch.equal(a, b) for a, b in zip(_weights(model).values(), _weights(reference).values(), strict=True)
    )


def test_resizing_to_the_same_rank_or_above_is_refused(base):
    from modules.sumi.engine.networks import NetworkError

    network = network_from_state_dict(tn.lora_state_dict(base, rank=4, seed=6), "four")
    with pytest.raises(NetworkError, match="is rank 4: a resize to rank 4 would add nothing"):
        resize_lora(network, 4)
