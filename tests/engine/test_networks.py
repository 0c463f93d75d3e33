"""LoRA / LyCORIS: adapter formulas, name mapping, in-place patching with exact restore."""

from __future__ import annotations

import pytest
import torch

from modules.sumi.engine.model import SDModel, TextEncoderSpec
from modules.sumi.engine.networks import (
    NetworkError,
    NetworkPatcher,
    adapter_for,
    build_index,
    load_network,
    match,
    network_from_state_dict,
)
from modules.sumi.engine.networks.adapters import IA3, Full, LoHa, LoKr, LoRA, Norm
from tests.fixtures import tiny_networks as tn
from tests.fixtures.tiny_models import tiny_sd1, tiny_sdxl


def _model(components: dict) -> SDModel:
    specs = [TextEncoderSpec(model=m, tokenizer=None) for m in components["text_encoders"]]
    return SDModel(components["family"], components["unet"], components["vae"], specs, scheduler_config={})


@pytest.fixture(scope="module")
def sd1():
    components = tiny_sd1()
    return components, _model(components)


@pytest.fixture(scope="module")
def sdxl():
    components = tiny_sdxl()
    return components, _model(components)


@pytest.fixture
def patcher(sd1):
    patcher = NetworkPatcher(sd1[1])
    yield patcher
    patcher.restore()


def _snapshot(model: SDModel) -> dict[str, torch.Tensor]:
    out = {}
    for prefix, module in (
        ("unet", model.unet),
        *((f"te{i}", s.model) for i, s in enumerate(model.text_encoders)),
    ):
        out.update({f"{prefix}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    return out


def _changed(model: SDModel, before: dict) -> set[str]:
    now = _snapshot(model)
    return {k for k, v in now.items() if not torch.equal(v, before[k])}


def _outputs(model: SDModel) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.tensor([[49406, 320, 1125, 539, 49407]])
    with torch.no_grad():
        hidden = model.text_encoders[0].model(ids).last_hidden_state
        sample = torch.randn((1, 4, 8, 8), generator=generator)
        context = torch.randn((1, 5, 32), generator=generator)
        eps = model.unet(sample, 10, encoder_hidden_states=context).sample
    return hidden, eps


def _network(tmp_path, name: str, state_dict: dict, metadata: dict | None = None):
    path = tmp_path / f"{name}.safetensors"
    tn.save(path, state_dict, metadata)
    return load_network(path)


# -- adapter formulas ---------------------------------------------------------------------------


def test_lora_linear_and_conv_formulas():
    g = torch.Generator().manual_seed(0)
    up, down = torch.randn(6, 3, generator=g), torch.randn(3, 5, generator=g)
    lora = adapter_for({"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.5)})
    assert isinstance(lora, LoRA)
    torch.testing.assert_close(lora.delta(torch.zeros(6, 5)), (1.5 / 3) * up @ down, rtol=0, atol=0)
    # 1x1 conv on a conv layer and on a linear layer (SD1 conv proj_in vs SD2 linear proj_in)
    conv = adapter_for({"lora_up.weight": up[:, :, None, None], "lora_down.weight": down[:, :, None, None]})
    assert torch.equal(conv.delta(torch.zeros(6, 5, 1, 1)), (up @ down)[:, :, None, None])
    assert torch.equal(conv.delta(torch.zeros(6, 5)), up @ down)
    # LoCon: 3x3 down, 1x1 up
    down3 = torch.randn(3, 5, 3, 3, generator=g)
    locon = adapter_for(
        {"lora_up.weight": up[:, :, None, None], "lora_down.weight": down3, "alpha": torch.tensor(3.0)}
    )
    expected = torch.einsum("or,rikl->oikl", up, down3)
    torch.testing.assert_close(locon.delta(torch.zeros(6, 5, 3, 3)), expected)
    # CP decomposition: 1x1 up / down around a 3x3 core
    mid = torch.randn(3, 3, 3, 3, generator=g)
    cp = adapter_for(
        {
            "lora_up.weight": up[:, :, None, None],
            "lora_down.weight": down[:, :, None, None],
            "lora_mid.weight": mid,
        }
    )
    torch.testing.assert_close(
        cp.delta(torch.zeros(6, 5, 3, 3)), torch.einsum("ijkl,oi,jn->onkl", mid, up, down)
    )


def test_peft_names_are_lora():
    a, b = torch.ones(2, 4), torch.ones(3, 2)
    adapter = adapter_for({"lora_A.weight": a, "lora_B.weight": b})
    assert isinstance(adapter, LoRA) and adapter.scale == 1.0
    assert torch.equal(adapter.delta(torch.zeros(3, 4)), b @ a)


def test_loha_formula():
    g = torch.Generator().manual_seed(1)
    w = {n: torch.randn(s, generator=g) for n, s in [("hada_w1_a", (6, 2)), ("hada_w1_b", (2, 5))]}
    w |= {n: torch.randn(s, generator=g) for n, s in [("hada_w2_a", (6, 2)), ("hada_w2_b", (2, 5))]}
    adapter = adapter_for({**w, "alpha": torch.tensor(1.0)})
    assert isinstance(adapter, LoHa)
    expected = (w["hada_w1_a"] @ w["hada_w1_b"]) * (w["hada_w2_a"] @ w["hada_w2_b"]) * 0.5
    torch.testing.assert_close(adapter.delta(torch.zeros(6, 5)), expected)
    conv = {k: (v if k.endswith("a") else torch.randn(2, 5 * 9, generator=g)) for k, v in w.items()}
    expected = ((conv["hada_w1_a"] @ conv["hada_w1_b"]) * (conv["hada_w2_a"] @ conv["hada_w2_b"])).reshape(
        6, 5, 3, 3
    )
    torch.testing.assert_close(adapter_for(conv).delta(torch.zeros(6, 5, 3, 3)), expected)


def test_lokr_formula():
    g = torch.Generator().manual_seed(2)
    w1, w2 = torch.randn(2, 3, generator=g), torch.randn(4, 5, generator=g)
    adapter = adapter_for({"lokr_w1": w1, "lokr_w2": w2, "alpha": torch.tensor(7.0)})
    assert isinstance(adapter, LoKr) and adapter.scale == 1.0  # no low-rank side: alpha ignored
    torch.testing.assert_close(adapter.delta(torch.zeros(8, 15)), torch.kron(w1, w2))
    w2a, w2b = torch.randn(4, 2, generator=g), torch.randn(2, 5, 3, 3, generator=g)
    conv = adapter_for({"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "alpha": torch.tensor(1.0)})
    assert conv.scale == 0.5
    expected = torch.kron(w1[:, :, None, None], torch.einsum("or,rikl->oikl", w2a, w2b)) * 0.5
    torch.testing.assert_close(conv.delta(torch.zeros(8, 15, 3, 3)), expected)


def test_full_ia3_norm_formulas():
    g = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    diff, diff_b = torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    full = adapter_for({"diff": diff, "diff_b": diff_b, "alpha": torch.tensor(2.0)})
    assert isinstance(full, Full)
    assert torch.equal(full.delta(weight), diff) and torch.equal(full.bias_delta(bias), diff_b)
    scale = torch.randn(4, generator=g)
    ia3 = adapter_for({"weight": scale})
    assert isinstance(ia3, IA3)
    torch.testing.assert_close(ia3.delta(weight), weight * scale[:, None])
    on_input = adapter_for({"weight": scale[:3], "on_input": torch.tensor(True)})
    torch.testing.assert_close(on_input.delta(weight), weight * scale[None, :3])
    norm = adapter_for({"w_norm": scale, "b_norm": diff_b})
    assert isinstance(norm, Norm)
    assert torch.equal(norm.delta(bias), scale) and torch.equal(norm.bias_delta(bias), diff_b)


def test_dora_renormalises_to_magnitude():
    g = torch.Generator().manual_seed(4)
    weight, up, down = (
        torch.randn(6, 5, generator=g),
        torch.randn(6, 2, generator=g),
        torch.randn(2, 5, generator=g),
    )
    merged = weight + up @ down
    magnitude = merged.norm(dim=0, keepdim=True)
    same = adapter_for({"lora_up.weight": up, "lora_down.weight": down, "dora_scale": magnitude})
    torch.testing.assert_close(same.delta(weight), up @ down, rtol=1e-5, atol=1e-5)
    doubled = adapter_for({"lora_up.weight": up, "lora_down.weight": down, "dora_scale": 2 * magnitude})
    torch.testing.assert_close(doubled.delta(weight), 2 * merged - weight, rtol=1e-5, atol=1e-5)


# -- files and names ----------------------------------------------------------------------------


def test_load_network_alias_family_and_kohya_grouping(tmp_path, sd1):
    components, _ = sd1
    path = tmp_path / "my_lora.safetensors"
    tn.write_lora(path, components, output_name="Pretty Name")
    network = load_network(path)
    assert network.name == "my_lora" and network.alias == "Pretty Name"
    layer = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    assert set(network.layers[layer]) == {"lora_up.weight", "lora_down.weight", "alpha"}
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in network.layers
    assert network.family == ""  # 32-wide tiny text encoder: neither SD1 (768) nor SD2 (1024)
    with pytest.raises(NetworkError, match="no such file"):
        load_network(tmp_path / "missing.safetensors")


def test_sd1_kohya_lora_matches_every_key(sd1):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components, locon=True), "x")
    result = match(network, model)
    assert result.unmatched == []
    components_hit = {p.target.component for p in result.patches}
    assert components_hit == {"unet", "te0"}
    assert len(result.patches) == len(network.layers)


def test_sdxl_kohya_names_map_onto_the_tiny_sdxl_model(sdxl):
    components, model = sdxl
    state_dict = tn.lora_state_dict(components, locon=True)
    assert any(k.startswith("lora_unet_input_blocks_") for k in state_dict)
    assert any(k.startswith("lora_te1_") for k in state_dict) and any(
        k.startswith("lora_te2_") for k in state_dict
    )
    network = network_from_state_dict(state_dict, "xl")
    assert network.family == "SDXL"
    result = match(network, model)
    assert result.unmatched == []
    assert {p.target.component for p in result.patches} == {"unet", "te0", "te1"}
    patcher = NetworkPatcher(model)
    before = _snapshot(model)
    patcher.apply([(network, 1.0, 1.0)])
    changed = _changed(model, before)
    assert any(k.startswith("te1.text_model.encoder") for k in changed)
    assert any(k.startswith("unet.up_blocks.0.attentions") for k in changed)
    patcher.restore()
    assert _changed(model, before) == set()


def test_peft_dotted_names_match(sd1, sdxl):
    for components, model in (sd1, sdxl):
        network = network_from_state_dict(tn.lora_state_dict(components, layout="peft"), "peft")
        result = match(network, model)
        assert result.unmatched == [] and result.patches


def test_index_knows_diffusers_and_ldm_unet_names(sd1):
    index = build_index(sd1[1])
    a = index["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"]
    b = index["lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q"]
    assert a is b and a.name == "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    assert index["lora_unet_input_blocks_1_0_in_layers_2"].name == "down_blocks.0.resnets.0.conv1"


# -- patching -------------------------------------------------------------------------------------


def test_lora_changes_outputs_and_restore_is_bit_exact(tmp_path, sd1, patcher):
    components, model = sd1
    state_dict = tn.lora_state_dict(components, locon=True, cp=True, rank=4, alpha=2.0)
    network = _network(tmp_path, "lora", state_dict)
    before, (hidden0, eps0) = _snapshot(model), _outputs(model)
    patcher.apply([(network, 0.7, 0.7)])
    hidden1, eps1 = _outputs(model)
    assert not torch.allclose(hidden0, hidden1) and not torch.allclose(eps0, eps1)
    # the weight is exactly W + mult * alpha / rank * up @ down
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    expected = before["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"] + 0.7 * (
        2.0 / 4
    ) * (state_dict[f"{name}.lora_up.weight"] @ state_dict[f"{name}.lora_down.weight"])
    assert torch.equal(
        model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.weight, expected
    )
    patcher.restore()
    assert _changed(model, before) == set()
    hidden2, eps2 = _outputs(model)
    assert torch.equal(hidden0, hidden2) and torch.equal(eps0, eps2)


def test_multiplier_zero_is_no_network(sd1, patcher):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components), "zero")
    before = _snapshot(model)
    patcher.apply([(network, 0.0, 0.0)])
    assert _changed(model, before) == set() and patcher.patched_layers == set()


def test_separate_te_and_unet_multipliers(sd1, patcher):
    components, model = sd1
    network = network_from_state_dict(tn.lora_state_dict(components), "sep")
    before = _snapshot(model)
    patcher.apply([(network, 0.0, 1.0)])
    changed = _changed(model, before)
    assert changed and all(k.startswith("unet.") for k in changed)
    patcher.apply([(network, 1.0, 0.0)])
    changed = _changed(model, before)
    assert changed and all(k.startswith("te0.") for k in changed)


def test_two_loras_compose(sd1, patcher):
    components, model = sd1
    a = network_from_state_dict(tn.lora_state_dict(components, seed=1), "a")
    b = network_from_state_dict(tn.lora_state_dict(components, seed=2), "b")
    before = _snapshot(model)
    key = "unet.up_blocks.1.attentions.0.transformer_blocks.0.ff.net.2.weight"
    deltas = {}
    for name, spec in (
        ("a", [(a, 1.0, 0.5)]),
        ("b", [(b, 1.0, 1.5)]),
        ("ab", [(a, 1.0, 0.5), (b, 1.0, 1.5)]),
    ):
        patcher.apply(spec)
        deltas[name] = _snapshot(model)[key] - before[key]
    torch.testing.assert_close(deltas["ab"], deltas["a"] + deltas["b"], rtol=1e-5, atol=1e-6)


def test_switching_touches_only_what_differs(sd1, patcher):
    components, model = sd1
    shared = network_from_state_dict(tn.lora_state_dict(components, te=False, seed=1), "shared")
    b = network_from_state_dict(tn.lora_state_dict(components, unet=False, seed=2), "b")
    c = network_from_state_dict(tn.lora_state_dict(components, unet=False, seed=3), "c")
    patcher.apply([(shared, 1.0, 1.0), (b, 1.0, 1.0)])
    touched = []
    original_patch, original_restore = patcher._patch_layer, patcher._restore_layer
    patcher._patch_layer = lambda key, deltas: (touched.append(key), original_patch(key, deltas))
    patcher._restore_layer = lambda key: (touched.append(key), original_restore(key))
    patcher.apply([(shared, 1.0, 1.0), (c, 1.0, 1.0)])
    assert touched and all(key.startswith("te0:") for key in touched)
    touched.clear()
    patcher.apply([(shared, 1.0, 1.0), (c, 1.0, 1.0)])
    assert touched == []


def test_unmatched_keys_are_reported(sd1, patcher):
    components, model = sd1
    state_dict = tn.lora_state_dict(components)
    state_dict["lora_unet_no_such_block_0_to_q.lora_down.weight"] = torch.zeros(4, 32)
    state_dict["lora_unet_no_such_block_0_to_q.lora_up.weight"] = torch.zeros(32, 4)
    network = network_from_state_dict(state_dict, "partly")
    (result,) = patcher.apply([(network, 1.0, 1.0)])
    assert result.unmatched == [
        "lora_unet_no_such_block_0_to_q.lora_down.weight",
        "lora_unet_no_such_block_0_to_q.lora_up.weight",
    ]
    assert result.summary().startswith("2 unmatched keys: lora_unet_no_such_block_0_to_q")


def test_wrong_family_is_refused_and_changes_nothing(tmp_path, sd1, sdxl, patcher):
    components, model = sd1
    good = network_from_state_dict(tn.lora_state_dict(components), "good")
    patcher.apply([(good, 1.0, 1.0)])
    before, applied = _snapshot(model), patcher.patched_layers
    xl = _network(tmp_path, "xl_lora", tn.lora_state_dict(sdxl[0]))
    with pytest.raises(
        NetworkError, match=r"xl_lora\.safetensors: this is an SDXL network and the loaded model is SD1"
    ):
        patcher.apply([(xl, 1.0, 1.0)])
    # no family guess (keys without text encoder layers): refused because no layer matches
    unet_only = {k: v for k, v in tn.lora_state_dict(sdxl[0], te=False).items() if "middle_block" not in k}
    with pytest.raises(
        NetworkError, match=r"xl_unet\.safetensors: none of its \d+ layers match this SD1 model"
    ):
        patcher.apply([(_network(tmp_path, "xl_unet", unet_only), 1.0, 1.0)])
    # one layer of the wrong size among good ones: also refused before any weight changes
    bad_state = tn.lora_state_dict(components, seed=5)
    bad_state["lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"] = torch.zeros(64, 4, 1, 1)
    bad = _network(tmp_path, "bad_shape", bad_state)
    with pytest.raises(NetworkError, match=r"bad_shape\.safetensors: 1 layers do not fit"):
        patcher.apply([(bad, 1.0, 1.0)])
    assert _changed(model, before) == set() and patcher.patched_layers == applied


@pytest.mark.parametrize("kind", ["loha", "lokr", "full", "ia3_norm"])
def test_lycoris_files_apply_and_restore(tmp_path, sd1, patcher, kind):
    components, model = sd1
    state_dict = getattr(tn, f"{kind}_state_dict")(components)
    network = _network(tmp_path, kind, state_dict)
    result = match(network, model)
    assert result.unmatched == []
    before, outputs = _snapshot(model), _outputs(model)
    patcher.apply([(network, 1.0, 1.0)])
    assert _changed(model, before)
    assert not torch.allclose(outputs[1], _outputs(model)[1])
    patcher.restore()
    assert _changed(model, before) == set()


def test_half_precision_weights_restore_exactly(sd1):
    components = tiny_sd1(seed=7)
    model = _model(components)
    model.unet.to(torch.float16)
    before = _snapshot(model)
    network = network_from_state_dict(tn.lora_state_dict(components, locon=True), "half")
    patcher = NetworkPatcher(model, backup_device=None)
    patcher.apply([(network, 1.0, 1.0)])
    changed = _changed(model, before)
    assert changed and all(
        model.unet.state_dict()[k[5:]].dtype == torch.float16 for k in changed if k[:5] == "unet."
    )
    patcher.restore()
    assert _changed(model, before) == set()


def test_bundled_embeddings_are_read_apart_from_the_layers():
    state = {
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(4, 64),
        "bundle_emb.ok.string_to_param.*": torch.ones(2, 64),
        "bundle_emb.xl.clip_l": torch.ones(1, 768),
        "bundle_emb.xl.clip_g": torch.ones(1, 1280),
        "bundle_emb.broken.a": torch.ones(1, 64),
        "bundle_emb.broken.b": torch.ones(1, 64),
    }
    network = network_from_state_dict(state, "pivotal")
    assert list(network.layers) == ["lora_te_text_model_encoder_layers_0_mlp_fc1"]
    assert network.embeddings["ok"].vectors.shape == (2, 64) and network.embeddings["xl"].shape == 2048
    assert "broken" not in network.embeddings
    assert len(network.bundle_errors) == 1 and "bundled embedding broken" in network.bundle_errors[0]
