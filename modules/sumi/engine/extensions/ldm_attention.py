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
before; once an extension sets one, the layer calls it with LDM's arguments (and `del module.forward`
puts it back).
"""

from __future__ import annotations

from typing import Any

import torch

_NAMED: dict[type, type] = {}


class _LayersInOrder(torch.nn.ModuleList):
    """A `ModuleList` that can also be called, running its layers in order (LDM's `to_out`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x)
        return x


def _cross_attention_class(base: type) -> type:
    named = _NAMED.get(base)
    if named is not None:
        return named

    def __call__(  # noqa: N807 - the class's call
        self: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        own = self.__dict__.get("forward")
        if own is None:
            return base.__call__(self, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        return own(hidden_states, context=encoder_hidden_states, mask=attention_mask)

    named = type(
        "CrossAttention",
        (base,),
        {"__call__": __call__, "__module__": __name__, "__doc__": f"{base.__name__}, by A1111's name."},
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
