"""Norm layers (LayerNorm / GroupNorm) trained by LyCORIS: delta = w_norm, bias delta = b_norm."""

from __future__ import annotations

from torch import Tensor

from .base import Adapter, Weights, f32


class Norm(Adapter):
    kind = "norm"

    @staticmethod
    def detect(weights: Weights) -> bool:
        return "w_norm" in weights

    def updown(self, weight: Tensor) -> Tensor:
        return f32(self.weights["w_norm"], weight)

    def bias_delta(self, bias: Tensor | None) -> Tensor | None:
        b_norm = self.weights.get("b_norm")
        if b_norm is None or bias is None:
            return None
        return f32(b_norm, bias).reshape(bias.shape)
