"""LoRA / LyCORIS networks: read files, match them to a model's layers, patch weights in place.

network = load_network("models/Lora/style.safetensors")
patcher = NetworkPatcher(model)
patcher.apply([(network, 1.0, 0.8)])   # (network, text-encoder multiplier, UNet multiplier)
...                                    # sample
patcher.restore()                      # weights bit-identical to before
"""

from __future__ import annotations

from .adapters import ADAPTER_TYPES, Adapter, adapter_for
from .keys import Target, build_index
from .network_file import (
    MatchResult,
    NetworkError,
    NetworkFile,
    Patch,
    guess_family,
    load_network,
    match,
    network_from_state_dict,
)
from .patcher import NetworkPatcher

__all__ = [
    "ADAPTER_TYPES",
    "Adapter",
    "MatchResult",
    "NetworkError",
    "NetworkFile",
    "NetworkPatcher",
    "Patch",
    "Target",
    "adapter_for",
    "build_index",
    "guess_family",
    "load_network",
    "match",
    "network_from_state_dict",
]
