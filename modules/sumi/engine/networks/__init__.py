"""LoRA / LyCORIS networks: read files, match them to a model's layers, patch weights in place.

network = load_network("models/Lora/style.safetensors")
patcher = NetworkPatcher(model)
patcher.apply([(network, 1.0, 0.8)])   # (network, text-encoder multiplier, UNet multiplier)
...                                    # sample
patcher.restore()                      # weights bit-identical to before

In a job the same happens through the engine extension `NetworkPatch(patcher, [(network, 1.0, 0.8)])`,
whose patch scope applies and restores (`extensions.py`; hypernetworks: `HypernetworkPatch`).
"""

from __future__ import annotations

from .adapters import ADAPTER_TYPES, Adapter, adapter_for
from .extensions import HypernetworkPatch, NetworkPatch, drop_refused
from .keys import Target, build_index, kohya_name
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
from .patcher import NetworkPatcher, NetworkSpec

__all__ = [
    "ADAPTER_TYPES",
    "Adapter",
    "HypernetworkPatch",
    "MatchResult",
    "NetworkError",
    "NetworkFile",
    "NetworkPatch",
    "NetworkPatcher",
    "NetworkSpec",
    "Patch",
    "Target",
    "adapter_for",
    "build_index",
    "drop_refused",
    "guess_family",
    "kohya_name",
    "load_network",
    "match",
    "network_from_state_dict",
]
