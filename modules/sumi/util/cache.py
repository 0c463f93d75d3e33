"""One cache for values computed from files: parsed LoRAs, loaded ControlNets, thumbnails, ...

An entry is keyed by the file's path, modification time and size (plus whatever else the value
depends on, e.g. the device), so a file replaced on disk is read again. The least recently used
entries are dropped beyond `max_items` (a number, or a function read on every insert so a setting can
change it). Thread-safe; a value is computed outside the lock, so two threads asking for the same new
file at once may both compute it (the first one stored wins).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

V = TypeVar("V")

UNBOUNDED = -1


def file_key(path: str | Path) -> tuple[str, int, int]:
    """(path, mtime in ns, size): changes when the file is replaced or rewritten. OSError if it is gone."""
    stat = os.stat(path)
    return (str(path), stat.st_mtime_ns, stat.st_size)


class FileCache(Generic[V]):
    """Values derived from files, least recently used dropped first."""

    def __init__(self, max_items: int | Callable[[], int] = UNBOUNDED) -> None:
        self._max_items = max_items
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple, V] = OrderedDict()

    def get(self, path: str | Path, compute: Callable[[], V], *extra: Hashable) -> V:
        """The cached value for the file as it is now (and `extra`), else `compute()` stored."""
        key = (*file_key(path), *extra)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        value = compute()
        with self._lock:
            self._entries.setdefault(key, value)
            self._entries.move_to_end(key)
            self._trim()
            return self._entries.get(key, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _trim(self) -> None:
        limit = self._max_items() if callable(self._max_items) else self._max_items
        if limit < 0:
            return
        while len(self._entries) > limit:
            self._entries.popitem(last=False)
