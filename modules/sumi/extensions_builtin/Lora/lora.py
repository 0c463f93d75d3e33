"""A1111's built-in Lora extension's `lora` module: the old names of `networks`' state.

`available_loras`, `available_lora_aliases`, `available_lora_hash_lookup`, `forbidden_lora_aliases`,
`loaded_loras`, `list_available_loras()`, as A1111 1.5+ keeps them for older extensions (tagcomplete).
"""

from __future__ import annotations

from typing import Any

import networks

list_available_loras = networks.list_available_networks

_NAMES = {
    "available_loras": "available_networks",
    "available_lora_aliases": "available_network_aliases",
    "available_lora_hash_lookup": "available_network_hash_lookup",
    "forbidden_lora_aliases": "forbidden_network_aliases",
    "loaded_loras": "loaded_networks",
}


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(networks, _NAMES[name])
    raise AttributeError(f"module 'lora' has no attribute {name!r} (Sumi's built-in Lora networks)")
