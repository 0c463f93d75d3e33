"""IA3: the weight is rescaled per output row (or per input column with `on_input`): delta = W * w."""

from __future__ import annotations

from torch import Tensor

from .base import Adapter, Weights, f32


class IA3(Adapter):
    kind = "ia3"

    @staticmethod
    def detect(weights: Weights) -> bool:
        return "weight" in weights and set(weights) <= {"weight", "on_input", "alpha", "scale"}

    def updown(self, weight: Tensor) -> Tensor:
        w = f32(self.weights["weight"], weight).flatten()
        on_input = "on_input" in self.weights and bool(self.weights["on_input"].flatten()[0])
        shape = [1, -1] if on_input else [-1, 1]
        return weight * w.reshape(*shape, *[1] * (weight.dim() - 2))
