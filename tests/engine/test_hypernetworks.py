"""Hypernetworks: the A1111 .pt format, the context transform, and `<hypernet:...>` through the API."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

from modules.sumi.engine.errors import EngineError
from modules.sumi.engine.networks.hypernetwork import (
    HypernetworkProcessor,
    apply_hypernetworks,
    load_hypernetwork,
    remove_hypernetworks,
)
from tests.app_support import generate
from tests.fixtures.tiny_hypernetworks import write_hypernetwork

BODY = {"steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}


def _lin(x, sd, i):
    return F.linear(x, sd[f"linear.{i}.weight"], sd[f"linear.{i}.bias"])


def _ln(x, sd, i):
    return F.layer_norm(x, x.shape[-1:], sd[f"linear.{i}.weight"], sd[f"linear.{i}.bias"])


def test_module_matches_the_formula_with_activation_and_layer_norm(tmp_path):
    data = write_hypernetwork(tmp_path / "hn.pt", (8,), activation_func="relu", add_layer_norm=True)
    hn = load_hypernetwork(tmp_path / "hn.pt")
    x = torch.randn(2, 5, 8)
    for which in (0, 1):
        sd = data[8][which]
        # Linear, ReLU, LayerNorm, Linear, LayerNorm (no activation after the last linear)
        net = _ln(_lin(_ln(torch.relu(_lin(x, sd, 0)), sd, 2), sd, 3), sd, 4)
        torch.testing.assert_close(hn.layers[8][which](x, 0.7), x + net * 0.7)


@pytest.mark.parametrize("activation", ["mish", "swish", "softsign", "elu", "tanh", "sigmoid", "leakyrelu"])
def test_activations_dropout_and_activate_output(tmp_path, activation):
    data = write_hypernetwork(
        tmp_path / "hn.pt",
        (8,),
        activation_func=activation,
        activate_output=True,
        dropout_structure=[0, 0.3, 0],
    )
    hn = load_hypernetwork(tmp_path / "hn.pt")
    act = {"mish": F.mish, "swish": F.hardswish, "softsign": F.softsign, "elu": F.elu, "tanh": torch.tanh,
           "sigmoid": torch.sigmoid, "leakyrelu": F.leaky_relu}[activation]  # fmt: skip
    sd = data[8][0]
    x = torch.randn(3, 8)
    # Linear, act, Dropout (inert), Linear, act
    expected = x + act(_lin(act(_lin(x, sd, 0)), sd, 3))
    torch.testing.assert_close(hn.layers[8][0](x), expected)


def test_legacy_keys_and_wider_structures(tmp_path):
    data = write_hypernetwork(tmp_path / "old.pt", (8, 4), legacy_keys=True)
    assert "linear1.weight" in data[8][0]
    hn = load_hypernetwork(tmp_path / "old.pt")
    assert hn.dims == [4, 8]
    x = torch.randn(4)
    sd = {"linear.0.weight": data[4][1]["linear1.weight"], "linear.0.bias": data[4][1]["linear1.bias"],
          "linear.1.weight": data[4][1]["linear2.weight"], "linear.1.bias": data[4][1]["linear2.bias"]}  # fmt: skip
    torch.testing.assert_close(hn.layers[4][1](x), x + _lin(_lin(x, sd, 0), sd, 1))
    write_hypernetwork(tmp_path / "deep.pt", (8,), layer_structure=(1, 1.5, 2, 1), activation_func="relu")
    assert load_hypernetwork(tmp_path / "deep.pt").layers[8][0](torch.randn(8)).shape == (8,)


def test_malformed_files_raise_engine_errors(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"layer_structure": [1, 2, 1]}, tmp_path / "empty.pt")
    data = write_hypernetwork(tmp_path / "bad.pt", (8,))
    data[8][0]["linear.0.weight"] = torch.zeros(3, 3)
    torch.save(data, tmp_path / "bad.pt")
    write_hypernetwork(tmp_path / "act.pt", (8,), activation_func="nonsense")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle")
    for name in ("list", "empty", "bad", "act", "junk"):
        with pytest.raises(EngineError):
            load_hypernetwork(tmp_path / f"{name}.pt")


def test_processor_transforms_k_and_v_and_is_removed_exactly(tmp_path):
    torch.manual_seed(0)
    data = write_hypernetwork(tmp_path / "hn.pt", (6, 8), activation_func="tanh", scale=0.5)
    hn = load_hypernetwork(tmp_path / "hn.pt")
    cross = Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4).eval()
    self_attn = Attention(query_dim=8, heads=2, dim_head=4).eval()
    unet = torch.nn.ModuleDict({"attn2": cross, "attn1": self_attn})
    originals = [cross.processor, self_attn.processor]
    x, ctx = torch.randn(2, 5, 8), torch.randn(2, 3, 6)
    plain_cross, plain_self = cross(x, ctx), self_attn(x)

    def expected(attn, x, ctx, pair, m):
        k = attn.to_k(ctx + _lin(torch.tanh(_lin(ctx, pair[0], 0)), pair[0], 2) * m)
        v = attn.to_v(ctx + _lin(torch.tanh(_lin(ctx, pair[1], 0)), pair[1], 2) * m)
        q, k, v = (t.view(2, -1, 2, 4).transpose(1, 2) for t in (attn.to_q(x), k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, -1, 8)
        return attn.to_out[0](out)

    assert apply_hypernetworks(unet, [(hn, 0.6)]) == 2
    assert isinstance(cross.processor, HypernetworkProcessor)
    with torch.no_grad():
        torch.testing.assert_close(cross(x, ctx), expected(cross, x, ctx, data[6], 0.6))
        torch.testing.assert_close(self_attn(x), expected(self_attn, x, x, data[8], 0.6))
        # two hypernetworks chain: the second reads the first one's output
        apply_hypernetworks(unet, [(hn, 0.6), (hn, 0.0)])
        torch.testing.assert_close(cross(x, ctx), expected(cross, x, ctx, data[6], 0.6))
        apply_hypernetworks(unet, [(hn, 0.0)])
        assert torch.equal(cross(x, ctx), plain_cross) and torch.equal(self_attn(x), plain_self)
    remove_hypernetworks(unet)
    assert [cross.processor, self_attn.processor] == originals
    assert cross.processor is originals[0] and self_attn.processor is originals[1]


# -- through the API -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(make_module_app, tmp_path_factory):
    app = make_module_app(tmp_path_factory.mktemp("hypernet"), "--nowebui")
    folder = app.paths.hypernetwork_dir
    write_hypernetwork(folder / "anime.pt", (64, 32), seed=1, activation_func="relu", scale=0.5)
    write_hypernetwork(folder / "sub" / "other.pt", (64,), seed=2, scale=0.5)
    write_hypernetwork(folder / "sd2_only.pt", (1024,), seed=3)
    app.hypernetworks.refresh()
    return app


def _generate(client, prompt: str) -> tuple[bytes, dict]:
    return generate(client, BODY, prompt)


def _processors(app) -> list:
    return list(app.models.active.sd.unet.attn_processors.values())


def test_hypernet_changes_the_image_and_the_next_job_is_bit_identical(app, client):
    before, _ = _generate(client, "a fox")
    processors = _processors(app)
    with_hn, info = _generate(client, "a fox <hypernet:anime:1>")
    assert with_hn != before
    assert 'Hypernet hashes: "anime:' in info["infotexts"][0]
    after, _ = _generate(client, "a fox")
    assert after == before
    assert all(a is b for a, b in zip(processors, _processors(app), strict=True))


def test_multiplier_zero_is_no_hypernetwork_and_default_is_one(app, client):
    plain, _ = _generate(client, "a fox")
    zero, _ = _generate(client, "a fox <hypernet:anime:0>")
    assert zero == plain
    one, _ = _generate(client, "a fox <hypernet:anime:1>")
    default, _ = _generate(client, "a fox <hypernet:anime>")
    half, _ = _generate(client, "a fox <hypernet:anime:0.5>")
    assert default == one and half not in (one, plain)
    both, _ = _generate(client, "a fox <hypernet:anime:1> <hypernet:other:1>")
    assert both not in (one, plain)


def test_unknown_and_wrong_context_hypernets_warn_and_change_nothing(client):
    plain, _ = _generate(client, "a fox")
    missing, info = _generate(client, "a fox <hypernet:nope:1>")
    assert missing == plain and "Hypernetwork not found: nope" in info["warnings"]
    wrong, info = _generate(client, "a fox <hypernet:sd2_only:1>")
    assert wrong == plain and any("sd2_only" in w and "1024" in w for w in info["warnings"])


def test_hypernetworks_are_listed(client):
    names = {item["name"] for item in client.get("/sdapi/v1/hypernetworks").json()}
    assert {"anime", "other", "sd2_only"} <= names
