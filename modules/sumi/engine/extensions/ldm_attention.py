"""A1111's cross-attention layers as extensions find them: class `CrossAttention`, `forward(x, context,
mask)`, a callable `to_out`.

Extensions that change cross-attention (Regional Prompter's attention mode, ...) walk
`diffusion_model.named_modules()` for layers named `*attn2` whose class is called `CrossAttention`, and
set their own `module.forward = f` with LDM's signature `f(x, context=None, mask=None)`, computing
attention from `module.heads`, `to_q`, `to_k`, `to_v` and returning `module.to_out(out)`. Sumi's
diffusers UNet has the same layers (diffusers' `Attention`, whose `to_out` is a list) and calls them as
`attn2(hidden_states, encoder_hidden_states=..., attention_mask=...)`.

`name_cross_attention(unet)` gives each `attn2` layer a subclass of its class named `CrossAttention`
(nothing else of it changes: weights, processors, `state_dict()` keys) and makes its `to_out` callable
(its layers in order, as LDM's `Sequential`). While a layer has no `forward` of its own it runs as
before; a `forward` an extension sets is called with LDM's arguments (it is kept wrapped, the
extension's function as `module.forward.__wrapped__`), and `del module.forward` puts diffusers' back.
"""

from __future__ import annotations

from typing import Any

import torch

_NAMED: dict[type, type] = {}
_module_setattr: Any = torch.nn.Module.__setattr__  # (typed for tensors and modules only)


class _LayersInOrder(torch.nn.ModuleList):
    """A `ModuleList` that can also be called, running its layers in order (LDM's `to_out`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x)
        return x


def _ldm_call(forward: Any) -> Any:
    """An extension's LDM-style `forward(x, context=None, mask=None)` as the layer's forward, which
    diffusers calls with `(hidden_states, encoder_hidden_states=, attention_mask=)`."""

    def called_by_diffusers(
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        return forward(hidden_states, context=encoder_hidden_states, mask=attention_mask)

    called_by_diffusers.__wrapped__ = forward  # type: ignore[attr-defined]
    called_by_diffusers._sumi_ldm_call = True  # type: ignore[attr-defined]  # saved and set again: as is
    return called_by_diffusers


def _cross_attention_class(base: type) -> type:
    named = _NAMED.get(base)
    if named is not None:
        return named

    def __setattr__(self: Any, name: str, value: Any) -> None:  # noqa: N807 - the class's setattr
        if name == "forward" and callable(value):
            if getattr(value, "__func__", None) is base.forward and getattr(value, "__self__", None) is self:
                self.__dict__.pop("forward", None)  # its own forward saved earlier and put back
                return
            if not getattr(value, "_sumi_ldm_call", False):
                value = _ldm_call(value)
        _module_setattr(self, name, value)

    # Only setting `forward` is changed: the class's own call and forward stay diffusers' (torch.compile
    # traces them as before); `del module.forward` goes back to them.
    named = type(
        "CrossAttention",
        (base,),
        {"__setattr__": __setattr__, "__module__": __name__, "__doc__": f"{base.__name__}, by A1111's name."},
    )
    _NAMED[base] = named
    return named


def name_cross_attention(unet: torch.nn.Module) -> int:
    """Give every `attn2` layer of `unet` A1111's class name and a callable `to_out` (once); how many
    layers there are."""
    count = 0
    for name, module in unet.named_modules():
        if not name.endswith("attn2") or not hasattr(module, "to_q"):
            continue
        count += 1
        if type(module).__name__ != "CrossAttention":
            module.__class__ = _cross_attention_class(type(module))
        to_out = getattr(module, "to_out", None)
        if type(to_out) is torch.nn.ModuleList:
            to_out.__class__ = _LayersInOrder
    return count
