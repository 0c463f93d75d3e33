"""LoKr (LyCORIS Kronecker product): delta = scale * kron(w1, w2).

Each side is either full (`lokr_w1`, `lokr_w2`) or low rank (`_a @ _b`, `lokr_t2` Tucker core
for conv). The scale is alpha / rank only when a low-rank side exists, else 1 (A1111, LyCORIS).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Adapter, Weights, f32, rebuild_tucker


class LoKr(Adapter):
    kind = "lokr"

    @staticmethod
    def detect(weights: Weights) -> bool:
        w1 = "lokr_w1" in weights or ("lokr_w1_a" in weights and "lokr_w1_b" in weights)
        w2 = "lokr_w2" in weights or ("lokr_w2_a" in weights and "lokr_w2_b" in weights)
        return w1 and w2

    @property
    def rank(self) -> int | None:
        for name in ("lokr_w1_b", "lokr_w2_b"):
            if name in self.weights:
                return int(self.weights[name].shape[0])
        return None

    def _side(self, index: int, weight: Tensor) -> Tensor:
        if f"lokr_w{index}" in self.weights:
            return f32(self.weights[f"lokr_w{index}"], weight)
        wa = f32(self.weights[f"lokr_w{index}_a"], weight)
        wb = f32(self.weights[f"lokr_w{index}_b"], weight)
        core = self.weights.get(f"lokr_t{index}")
        if core is not None:
            return rebuild_tucker(f32(core, weight), wa, wb)
        product = wa @ wb.flatten(1)
        return product.reshape(wa.shape[0], *wb.shape[1:]) if wb.dim() == 4 else product

    def updown(self, weight: Tensor) -> Tensor:
        w1, w2 = self._side(1, weight), self._side(2, weight)
        if w2.dim() == 4 and w1.dim() == 2:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2)
