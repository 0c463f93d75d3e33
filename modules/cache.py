"""A1111's `modules.cache`: named sections of `<data>/cache.json` (the file A1111 and Sumi keep hashes
in) for extensions' own cached values.

`cache(name)` is a dict saved on every change (A1111 1.7 wrote a dict to cache.json, 1.8+ hands out a
diskcache; both are used as `get`, `[key]`, `[key] = value`); `cached_data_for_file(name, title,
filename, func)` keeps `func()`'s value until the file's modification time moves past it, as A1111.
`dump_cache()` has nothing left to write.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modules import shared
from modules.sumi.util.json_sections import JsonFileSection

_sections: dict[tuple[Path, str], JsonFileSection] = {}
_lock = threading.Lock()


def _cache_file() -> Path:
    return Path(shared.app().paths.cache_file)


def __getattr__(name: str) -> object:
    if name == "cache_filename":
        return str(_cache_file())
    raise AttributeError(f"module 'modules.cache' has no attribute {name!r}")


def cache(subsection: str) -> JsonFileSection:
    """The section `subsection` of cache.json, as a dict saved on every change."""
    key = (_cache_file(), str(subsection))
    with _lock:
        if key not in _sections:
            _sections[key] = JsonFileSection(*key)
        return _sections[key]


def cached_data_for_file(subsection: str, title: str, filename: str, func: Callable[[], Any]) -> Any:
    """`func()` for `filename`, cached under `title` until the file changes (None from `func` is not
    cached, and returned)."""
    section = cache(subsection)
    on_disk = os.path.getmtime(filename)
    entry = section.get(title)
    if not isinstance(entry, dict) or "value" not in entry or on_disk > entry.get("mtime", 0):
        value = func()
        if value is None:
            return None
        entry = {"mtime": on_disk, "value": value}
        section[title] = entry
    return entry["value"]


def dump_cache() -> None:
    """A1111 wrote its cache some seconds later; every change here is written at once."""
