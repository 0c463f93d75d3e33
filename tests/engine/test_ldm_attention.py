"""The UNet's cross-attention layers by A1111's name: `CrossAttention` layers under `*attn2`, whose
`forward` an extension replaces with LDM's `forward(x, context=None, mask=None)` (Regional Prompter)."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from modules.sumi.engine.extensions.ldm_attention import name_cross_attention
from modules.sumi.engine.tiny_models import tiny
from tests.fixtures.tiny_models import unet_call


@pytest.fixture(scope="module", params=["SD1", "SDXL"])
def unet(request):
    model = tiny(request.param)["unet"].eval()
    keys = list(model.state_dict())
    assert name_cross_attention(model) > 0
    assert list(model.state_dict()) == keys
    return model


def ldm_forward(module, calls):
    """Regional Prompter's plain path: attention computed from the layer's parts, LDM style."""

    def forward(x, context=None, mask=None, additional_tokens=None, n_times_crossframe_attn_in_self=0):
        calls.append(tuple(context.shape))
        h = module.heads
        q, k, v = module.to_q(x), module.to_k(context), module.to_v(context)
        q, k, v = (rearrange(t, "b n (h d) -> (b h) n d", h=h) for t in (q, k, v))
        attention = (torch.einsum("b i d, b j d -> b i j", q, k) * q.shape[-1] ** -0.5).softmax(dim=-1)
        out = rearrange(torch.einsum("b i j, b j d -> b i d", attention, v), "(b h) n d -> b n (h d)", h=h)
        return module.to_out(out)

    return forward


def cross_attention_layers(unet):
    return [
        m for name, m in unet.named_modules() if "attn2" in name and m.__class__.__name__ == "CrossAttention"
    ]


@torch.no_grad()
def test_an_ldm_style_forward_set_on_every_layer_gives_the_same_prediction_and_del_puts_it_back(unet):
    x, t, kwargs = unet_call(unet)
    plain = unet(x, t, return_dict=False, **kwargs)[0]
    layers = cross_attention_layers(unet)
    assert layers and all(isinstance(m, torch.nn.Module) for m in layers)
    calls: list[tuple[int, ...]] = []
    for module in layers:
        module.forward = ldm_forward(module, calls)
    try:
        hooked = unet(x, t, return_dict=False, **kwargs)[0]
    finally:
        for module in layers:
            del module.forward
    assert len(calls) == len(layers) and all(shape[1] == 77 for shape in calls)
    torch.testing.assert_close(hooked, plain, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(unet(x, t, return_dict=False, **kwargs)[0], plain)


@torch.no_grad()
def test_what_the_replaced_forward_returns_is_what_the_unet_goes_on_with(unet):
    x, t, kwargs = unet_call(unet)
    plain = unet(x, t, return_dict=False, **kwargs)[0]
    layers = cross_attention_layers(unet)
    for module in layers:
        module.forward = lambda x, context=None, mask=None: torch.zeros_like(x)
    try:
        silenced = unet(x, t, return_dict=False, **kwargs)[0]
    finally:
        for module in layers:
            del module.forward
    assert not torch.allclose(silenced, plain)


def test_naming_twice_changes_nothing_and_self_attention_keeps_its_class(unet):
    before = [type(m) for m in cross_attention_layers(unet)]
    name_cross_attention(unet)
    assert [type(m) for m in cross_attention_layers(unet)] == before
    assert all(type(m).__name__ != "CrossAttention" for n, m in unet.named_modules() if n.endswith("attn1"))


@torch.no_grad()
def test_a_forward_saved_and_set_back_runs_as_it_did(unet):
    """Extensions that keep `module.forward` to restore it later (their own hook, or the layer's own)."""
    x, t, kwargs = unet_call(unet)
    plain = unet(x, t, return_dict=False, **kwargs)[0]
    layers = cross_attention_layers(unet)
    originals = [module.forward for module in layers]  # the layers' own bound forward
    calls: list[tuple[int, ...]] = []
    for module in layers:
        module.forward = ldm_forward(module, calls)
    hooks = [module.forward for module in layers]
    for module, original in zip(layers, originals, strict=True):
        module.forward = original
    assert all("forward" not in module.__dict__ for module in layers)
    torch.testing.assert_close(unet(x, t, return_dict=False, **kwargs)[0], plain)
    for module, hook in zip(layers, hooks, strict=True):
        module.forward = hook  # a saved hook set again: called as before, not wrapped twice
    try:
        torch.testing.assert_close(unet(x, t, return_dict=False, **kwargs)[0], plain, rtol=1e-4, atol=1e-4)
    finally:
        for module in layers:
            del module.forward
    assert len(calls) == len(layers)


@torch.no_grad()
def test_named_layers_compile_without_a_graph_break(unet):
    """The name is all that changes: torch.compile traces the UNet in one graph, as before naming."""
    import torch._dynamo

    x, t, kwargs = unet_call(unet)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(unet)(x, t, return_dict=False, **kwargs)
    assert explained.graph_break_count == 0, explained.break_reasons
