"""What every adapter type shares: the scale rule and the delta contract.

An adapter holds the tensors one network file gives one model layer. `delta(weight)` returns the
weight change in fp32, already multiplied by the network's own scale (`scale` key, else
alpha / rank, else 1), but not by the user's multiplier; `bias_delta(bias)` likewise for the bias
(bias deltas get no scale, only the multiplier, as in A1111). `weight` is the layer's original
weight in fp32: most types only need its shape, IA3 and DoRA need its values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

Weights = Mapping[str, Tensor]


def scale_of(weights: Weights, rank: int | None) -> float:
    """A1111's rule: an explicit `scale`, else `alpha / rank` when both exist, else 1."""
    if "scale" in weights:
        return float(weights["scale"])
    if rank and "alpha" in weights:
        return float(weights["alpha"]) / rank
    return 1.0


def f32(tensor: Tensor, like: Tensor) -> Tensor:
    return tensor.to(device=like.device, dtype=torch.float32)


def rebuild_tucker(core: Tensor, wa: Tensor, wb: Tensor) -> Tensor:
    """LyCORIS CP-Tucker rebuild: core (r, r, k, k), wa (r, out), wb (r, in) -> (out, in, k, k)."""
    return torch.einsum("i j k l, j r, i p -> p r k l", core, wb, wa)


def as_weight_shape(delta: Tensor, weight: Tensor, what: str) -> Tensor:
    """Reshape a delta to the layer's weight shape (1x1 conv <-> linear), or raise ValueError."""
    if delta.shape == weight.shape:
        return delta
    if delta.numel() != weight.numel():
        raise ValueError(f"{what} delta has shape {tuple(delta.shape)}, the layer {tuple(weight.shape)}")
    return delta.reshape(weight.shape)


def apply_dora(delta: Tensor, weight: Tensor, dora_scale: Tensor) -> Tensor:
    """DoRA: re-normalise W + delta column-wise (per input channel) to the learnt magnitudes.

    Returns the new delta (W' - W). As in A1111 the user's multiplier is applied afterwards.
    """
    merged = weight + delta
    flat = merged.transpose(0, 1).reshape(merged.shape[1], -1)
    norm = flat.norm(dim=1, keepdim=True).reshape(merged.shape[1], *[1] * (merged.dim() - 1)).transpose(0, 1)
    scale = (
        dora_scale.to(merged).reshape(norm.shape)
        if dora_scale.numel() == norm.numel()
        else dora_scale.to(merged)
    )
    return merged * (scale / norm) - weight


class Adapter:
    """One layer's part of one network. Subclasses set `kind` and implement `detect`, `delta`."""

    kind = "base"

    def __init__(self, weights: Weights):
        self.weights = dict(weights)
        self.dora_scale = self.weights.get("dora_scale")

    @staticmethod
    def detect(weights: Weights) -> bool:
        raise NotImplementedError

    @property
    def rank(self) -> int | None:
        return None

    @property
    def scale(self) -> float:
        return scale_of(self.weights, self.rank)

    def updown(self, weight: Tensor) -> Tensor:
        """The unscaled weight change in fp32 (shape of `weight`)."""
        raise NotImplementedError

    def delta(self, weight: Tensor) -> Tensor:
        delta = as_weight_shape(self.updown(weight), weight, self.kind) * self.scale
        if self.dora_scale is not None:
            delta = apply_dora(delta, weight, f32(self.dora_scale, weight))
        return delta

    def bias_delta(self, bias: Tensor | None) -> Tensor | None:
        return None
