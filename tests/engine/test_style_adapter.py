"""The T2I style adapter: TencentARC's file layout loads; the network equals CLIP's encoder layers
(transformers') around the style tokens; its tokens join every cond row's text, zeros the uncond rows'."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPVisionConfig
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from modules.sumi.engine.controlnet.models import detect_controlnet_family, load_controlnet
from modules.sumi.engine.controlnet.style_adapter import (
    StyleAdapterNetwork,
    StyleTokensExtension,
    StyleTokensUnit,
)
from modules.sumi.engine.errors import InvalidRequestError
from modules.sumi.engine.extensions import UNetBatch
from modules.sumi.engine.text.encoder import Conditioning
from tests.fixtures.tiny_ip_adapter import style_state


def _clip_layer(state: dict, i: int, width: int) -> CLIPEncoderLayer:
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=4 * width,
        num_attention_heads=8,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    layer = CLIPEncoderLayer(config).eval()
    p = f"transformer_layes.{i}."
    q, k, v = state[p + "attn.in_proj_weight"].chunk(3)
    qb, kb, vb = state[p + "attn.in_proj_bias"].chunk(3)
    weights = {
        "self_attn.q_proj.weight": q,
        "self_attn.q_proj.bias": qb,
        "self_attn.k_proj.weight": k,
        "self_attn.k_proj.bias": kb,
        "self_attn.v_proj.weight": v,
        "self_attn.v_proj.bias": vb,
        "self_attn.out_proj.weight": state[p + "attn.out_proj.weight"],
        "self_attn.out_proj.bias": state[p + "attn.out_proj.bias"],
        "layer_norm1.weight": state[p + "ln_1.weight"],
        "layer_norm1.bias": state[p + "ln_1.bias"],
        "mlp.fc1.weight": state[p + "mlp.c_fc.weight"],
        "mlp.fc1.bias": state[p + "mlp.c_fc.bias"],
        "mlp.fc2.weight": state[p + "mlp.c_proj.weight"],
        "mlp.fc2.bias": state[p + "mlp.c_proj.bias"],
        "layer_norm2.weight": state[p + "ln_2.weight"],
        "layer_norm2.bias": state[p + "ln_2.bias"],
    }
    layer.load_state_dict(weights)
    return layer


def test_the_file_loads_and_equals_clip_encoder_layers_around_the_style_tokens(tmp_path):
    state = style_state()
    path = tmp_path / "t2iadapter_style_sd14v1.pth"
    torch.save(state, path)
    loaded = load_controlnet(path, expected_family="SD1")
    assert detect_controlnet_family(state) == "SD1"
    hidden = torch.randn(2, 257, 64)
    with torch.no_grad():
        found = loaded.model(hidden)
        x = torch.cat([hidden, state["style_embedding"].expand(2, -1, -1)], dim=1)
        x = torch.nn.functional.layer_norm(x, (64,), state["ln_pre.weight"], state["ln_pre.bias"], 1e-5)
        for i in range(3):
            out = _clip_layer(state, i, 64)(x, None)
            x = out[0] if isinstance(out, tuple) else out
        x = torch.nn.functional.layer_norm(
            x[:, -8:], (64,), state["ln_post.weight"], state["ln_post.bias"], 1e-5
        )
        expected = x @ state["proj"]
    assert found.shape == (2, 8, 32)
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-5)


def test_the_tokens_join_the_cond_rows_scaled_and_the_uncond_rows_get_zeros():
    adapter = StyleAdapterNetwork(64, 32, 1, 8)
    tokens = torch.randn(2, 8, 32)
    extension = StyleTokensExtension([StyleTokensUnit(adapter, tokens, weight=0.5, guidance_end=0.5)])
    context = torch.randn(3, 77, 32)
    batch = UNetBatch(
        x=torch.zeros(3, 4, 8, 8),
        timestep=torch.tensor(1.0),
        context=Conditioning(context),
        time_ids=None,
        images=torch.tensor([1, 0, 1]),
        is_cond=torch.tensor([True, True, False]),
        step=0,
        total_steps=4,
    )
    extension.append_tokens(batch)
    got = batch.context.context
    assert got.shape == (3, 85, 32) and torch.equal(got[:, :77], context)
    torch.testing.assert_close(got[0, 77:], tokens[1] * 0.5)
    torch.testing.assert_close(got[1, 77:], tokens[0] * 0.5)
    assert torch.equal(got[2, 77:], torch.zeros(8, 32))
    late = UNetBatch(batch.x, batch.timestep, Conditioning(context), None, batch.images, batch.is_cond, 3, 4)
    extension.append_tokens(late)
    assert late.context.context.shape[1] == 77  # past the guidance end: nothing appended
    with pytest.raises(InvalidRequestError, match="after guidance end"):
        StyleTokensUnit(adapter, tokens, guidance_start=0.9, guidance_end=0.1)
