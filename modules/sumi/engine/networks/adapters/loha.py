"""LoHa (LyCORIS Hadamard product): delta = (alpha / rank) * (w1a @ w1b) * (w2a @ w2b).

With `hada_t1`/`hada_t2` (CP-Tucker conv) each factor is rebuilt from its core first.
"""

from __future__ import annotations

from torch import Tensor

from .base import Adapter, Weights, f32, rebuild_tucker

_REQUIRED = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


class LoHa(Adapter):
    kind = "loha"

    @staticmethod
    def detect(weights: Weights) -> bool:
        return all(name in weights for name in _REQUIRED)

    @property
    def rank(self) -> int:
        return int(self.weights["hada_w1_b"].shape[0])

    def _factor(self, index: int, weight: Tensor) -> Tensor:
        wa = f32(self.weights[f"hada_w{index}_a"], weight)
        wb = f32(self.weights[f"hada_w{index}_b"], weight)
        core = self.weights.get(f"hada_t{index}")
        if core is not None:
            return rebuild_tucker(f32(core, weight), wa, wb)
        return wa @ wb.flatten(1)

    def updown(self, weight: Tensor) -> Tensor:
        return self._factor(1, weight) * self._factor(2, weight)
