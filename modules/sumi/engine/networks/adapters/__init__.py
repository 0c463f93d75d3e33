"""One small class per network type; `adapter_for` picks the first type that accepts a layer's weights.

The order follows A1111's built-in Lora extension: LoRA/LoCon, LoHa, IA3, LoKr, full, norm.
"""

from __future__ import annotations

from .base import Adapter, Weights
from .full import Full
from .ia3 import IA3
from .loha import LoHa
from .lokr import LoKr
from .lora import LoRA
from .norm import Norm

ADAPTER_TYPES: tuple[type[Adapter], ...] = (LoRA, LoHa, IA3, LoKr, Full, Norm)


def adapter_for(weights: Weights) -> Adapter | None:
    """The adapter for one layer's tensors, or None when no known type accepts them."""
    for adapter_type in ADAPTER_TYPES:
        if adapter_type.detect(weights):
            return adapter_type(weights)
    return None


__all__ = ["ADAPTER_TYPES", "Adapter", "Full", "IA3", "LoHa", "LoKr", "LoRA", "Norm", "adapter_for"]
