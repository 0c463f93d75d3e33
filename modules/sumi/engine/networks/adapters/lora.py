"""LoRA and LoCon (kohya, LyCORIS, PEFT names): delta = (alpha / rank) * up @ down.

Conv layers: a k x k `lora_down` with a 1x1 `lora_up` (LoCon), or the CP decomposition with a
`lora_mid` core (k x k) between 1x1 up and down.
"""

from __future__ import annotations

from torch import Tensor

from .base import Adapter, Weights, f32, rebuild_tucker

_NAMES = {"up": ("lora_up.weight", "lora_B.weight"), "down": ("lora_down.weight", "lora_A.weight")}


def _get(weights: Weights, role: str) -> Tensor | None:
    for name in _NAMES[role]:
        if name in weights:
            return weights[name]
    return None


class LoRA(Adapter):
    kind = "lora"

    def __init__(self, weights: Weights):
        super().__init__(weights)
        up, down = _get(weights, "up"), _get(weights, "down")
        if up is None or down is None:
            raise ValueError("a LoRA layer needs both its up and down weights")
        self.up, self.down = up, down
        self.mid = weights.get("lora_mid.weight")

    @staticmethod
    def detect(weights: Weights) -> bool:
        return _get(weights, "up") is not None and _get(weights, "down") is not None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def updown(self, weight: Tensor) -> Tensor:
        up, down = f32(self.up, weight), f32(self.down, weight)
        if self.mid is not None:
            return rebuild_tucker(f32(self.mid, weight), up.flatten(1).T, down.flatten(1))
        return up.flatten(1) @ down.flatten(1)
