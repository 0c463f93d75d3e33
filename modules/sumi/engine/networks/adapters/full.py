"""Full / diff networks (LyCORIS `full`): delta = diff, bias delta = diff_b (scale 1 unless `scale`)."""

from __future__ import annotations

from torch import Tensor

from .base import Adapter, Weights, f32


class Full(Adapter):
    kind = "full"

    @staticmethod
    def detect(weights: Weights) -> bool:
        return "diff" in weights

    def updown(self, weight: Tensor) -> Tensor:
        return f32(self.weights["diff"], weight)

    def bias_delta(self, bias: Tensor | None) -> Tensor | None:
        diff_b = self.weights.get("diff_b")
        if diff_b is None or bias is None:
            return None
        return f32(diff_b, bias).reshape(bias.shape)
