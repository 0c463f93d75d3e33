"""Network files users drop into folders: LoRA/LyCORIS and hypernetworks (A1111 discovery and names).

A network is called by its file stem (`<lora:stem:1>`) or by the alias in its metadata
(`ss_output_name`), unless that alias is shared by several files; then only the stem works (A1111).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.files import read_safetensors_metadata
from modules.sumi.services.models.checkpoints import HiddenRule, natural_sort_key, walk_files

LORA_EXTENSIONS = (".safetensors", ".pt", ".ckpt")
HYPERNETWORK_EXTENSIONS = (".pt", ".safetensors")


@dataclass
class NetworkFileInfo:
    name: str  # file stem
    path: Path
    alias: str
    metadata: dict[str, str] = field(default_factory=dict)


class NetworkFileRegistry:
    """Recursive listing of one kind of network file across folders; refresh without restart."""

    def __init__(
        self,
        folders: Iterable[Path],
        extensions: tuple[str, ...],
        read_metadata: bool = True,
        include_hidden: HiddenRule = True,
    ):
        self.folders = [Path(f) for f in folders]
        self.include_hidden = include_hidden
        self.extensions = extensions
        self.read_metadata = read_metadata
        self._lock = threading.Lock()
        self._items: dict[str, NetworkFileInfo] = {}
        self._aliases: dict[str, NetworkFileInfo] = {}
        self.refresh()

    def refresh(self) -> list[NetworkFileInfo]:
        items: dict[str, NetworkFileInfo] = {}
        for folder in self.folders:
            for path in walk_files(folder, self.extensions, self.include_hidden):
                items.setdefault(path.stem, self._info(path))
        ordered = dict(sorted(items.items(), key=lambda kv: natural_sort_key(kv[0])))
        aliases = _unique_aliases(ordered.values())
        with self._lock:
            self._items, self._aliases = ordered, aliases
        return list(ordered.values())

    def _info(self, path: Path) -> NetworkFileInfo:
        metadata = {}
        if self.read_metadata and path.suffix.lower() == ".safetensors":
            try:
                metadata = read_safetensors_metadata(path)
            except ModelLoadError:
                metadata = {}
        return NetworkFileInfo(path.stem, path, metadata.get("ss_output_name") or path.stem, metadata)

    def list(self) -> list[NetworkFileInfo]:
        with self._lock:
            return list(self._items.values())

    def find(self, name: str) -> NetworkFileInfo | None:
        """By stem first, then by an alias that only one file has."""
        with self._lock:
            return self._items.get(name) or self._aliases.get(name)

    def find_or_refresh(self, name: str) -> NetworkFileInfo | None:
        """`find`, rescanning the folders once when the name is not known: a file added since the last
        scan is found without a restart or a refresh button."""
        found = self.find(name)
        if found is None and name:
            self.refresh()
            found = self.find(name)
        return found


def _unique_aliases(items: Iterable[NetworkFileInfo]) -> dict[str, NetworkFileInfo]:
    seen: dict[str, list[NetworkFileInfo]] = {}
    for info in items:
        seen.setdefault(info.alias, []).append(info)
    return {
        alias: found[0]
        for alias, found in seen.items()
        if len(found) == 1 and alias not in ("none", "Addams")
    }
