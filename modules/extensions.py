"""A1111's `modules.extensions`: the installed extensions, as A1111 extensions read them.

The service is `modules.sumi.services.extensions.manager.ExtensionManager`, owned by the App; the
module-level names here (`extensions`, `active()`, the folders) read the running App.
"""

from __future__ import annotations

from typing import Any

from modules import paths_internal, shared
from modules.sumi.services.extensions.manager import topological_sort
from modules.sumi.services.extensions.model import Extension, ExtensionMetadata

__all__ = ["Extension", "ExtensionMetadata", "active", "topological_sort"]


def active() -> list[Extension]:
    """The running App's enabled extensions, in load order (A1111's `extensions.active()`)."""
    return shared.app().extensions.active()


def __getattr__(name: str) -> Any:
    if name == "extensions":
        return shared.app().extensions.list()
    if name in ("extensions_dir", "extensions_builtin_dir"):  # A1111 imports them here from paths
        return getattr(paths_internal, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
