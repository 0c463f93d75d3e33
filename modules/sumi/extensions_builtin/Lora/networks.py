"""A1111's built-in Lora extension's `networks` module, importable as a top-level `networks` (this folder
is on `sys.path`, as A1111's extensions-builtin/Lora is).

State, read from the running App whenever it is read:

- `available_networks`: file stem -> `network.NetworkOnDisk`, for every file in models/Lora and
  models/LyCORIS; `available_network_aliases`: the same by stem and by alias; `forbidden_network_aliases`:
  aliases several files share (lower case); `available_network_hash_lookup`: short hash -> file.
- `loaded_networks`: `network.Network` objects for the `<lora:...>` tags the last job applied.
- `list_available_networks()`: rescan the folders.

These are views: Sumi applies a job's networks from its prompt's tags (services/networks/lora.py), so
changing these containers does not change what a job applies.
"""

from __future__ import annotations

import os
from typing import Any

import network

from modules import shared

_on_disk: dict[tuple[str, float], network.NetworkOnDisk] = {}  # (path, mtime) -> object (stable identity)


def _app() -> Any:
    app = shared.running_app()
    if app is None:
        raise RuntimeError("networks: Sumi has not started yet (no App)")
    return app


def _files() -> list[network.NetworkOnDisk]:
    return [_object(info) for info in _app().loras.list()]


def _object(info: Any) -> network.NetworkOnDisk:
    path = str(info.path)
    try:
        key = (path, os.path.getmtime(path))
    except OSError:
        key = (path, 0.0)
    found = _on_disk.get(key)
    if found is None:
        found = network.NetworkOnDisk(info.name, path, dict(info.metadata))
        _on_disk[key] = found
    return found


def list_available_networks() -> None:
    """Rescan models/Lora and models/LyCORIS (A1111's refresh: the file objects are made anew)."""
    _on_disk.clear()
    _app().loras.refresh()


def _available_networks() -> dict[str, network.NetworkOnDisk]:
    return {item.name: item for item in _files()}


def _forbidden_network_aliases() -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in _files():
        if item.alias != item.name:
            counts[item.alias.lower()] = counts.get(item.alias.lower(), 0) + 1
    forbidden = {alias: 1 for alias, count in counts.items() if count > 1}
    forbidden.update({"none": 1, "addnet": 1})  # A1111 reserves these
    return forbidden


def _available_network_aliases() -> dict[str, network.NetworkOnDisk]:
    forbidden = _forbidden_network_aliases()
    aliases: dict[str, network.NetworkOnDisk] = {}
    for item in _files():
        aliases[item.name] = item
        if item.alias.lower() not in forbidden:
            aliases.setdefault(item.alias, item)
    return aliases


def _available_network_hash_lookup() -> dict[str, network.NetworkOnDisk]:
    return {item.shorthash: item for item in _files() if item.shorthash}


def _loaded_networks() -> list[network.Network]:
    handler = _app().extra_networks.lookup("lora")
    loaded = []
    for active in getattr(handler, "active", []):
        net = network.Network(active.mentioned_name, _object(active.info))
        net.mentioned_name = active.mentioned_name
        net.te_multiplier = active.te_multiplier
        net.unet_multiplier = active.unet_multiplier
        net.mtime = os.path.getmtime(active.info.path) if os.path.exists(active.info.path) else None
        loaded.append(net)
    return loaded


_STATE = {
    "available_networks": _available_networks,
    "available_network_aliases": _available_network_aliases,
    "forbidden_network_aliases": _forbidden_network_aliases,
    "available_network_hash_lookup": _available_network_hash_lookup,
    "loaded_networks": _loaded_networks,
}


def __getattr__(name: str) -> Any:
    if name in _STATE:
        return _STATE[name]()
    raise AttributeError(f"module 'networks' has no attribute {name!r} (Sumi's built-in Lora networks)")
