"""A1111's `modules.extra_networks`: `<name:args>` prompt tags and the handlers that apply them.

The registry lives in `modules.sumi.services.networks.registry`; the module-level functions here act
on the running App's registry, found through `modules.shared`.
"""

from __future__ import annotations

from typing import Any

from modules import shared
from modules.sumi.services.networks.registry import (
    ExtraNetwork,
    ExtraNetworkData,
    ExtraNetworkParams,
    parse_prompt,
    parse_prompts,
    re_extra_net,
)

__all__ = [
    "ExtraNetwork",
    "ExtraNetworkData",
    "ExtraNetworkParams",
    "activate",
    "deactivate",
    "parse_prompt",
    "parse_prompts",
    "re_extra_net",
    "register_extra_network",
]


def register_extra_network(extra_network: ExtraNetwork) -> None:
    """A1111's module-level registration, for extensions: adds the handler to the running App."""
    shared.app().extra_networks.register(extra_network)


def activate(p: Any, extra_network_data: ExtraNetworkData) -> None:
    """A1111's module-level activation (used by extensions that drive their own jobs)."""
    p.warnings.extend(shared.app().extra_networks.activate(p, extra_network_data))


def deactivate(p: Any, extra_network_data: ExtraNetworkData | None = None) -> None:
    p.warnings.extend(shared.app().extra_networks.deactivate(p))
