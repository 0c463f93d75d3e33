"""A section of a JSON file of sections (A1111's `cache.json`: "hashes", "safetensors-metadata", ...) as
a dict that is saved on every change: what extensions get from A1111's `modules.cache.cache(name)`.

A write re-reads the file and replaces only its own section (other sections' writers, Sumi's hash
cache among them, are not undone); a read notices when the file changed on disk. A file that is not
JSON is read as empty (and left for the hash cache to set aside); a file that cannot be written is a
warning, not an error.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)


class JsonFileSection(MutableMapping[str, Any]):
    def __init__(self, path: str | Path, section: str) -> None:
        self.path = Path(path)
        self.section = section
        self._lock = threading.RLock()
        self._data: dict[str, Any] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read

    def _file(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _fresh(self) -> dict[str, Any]:
        try:
            stat = os.stat(self.path)
            seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            seen = None
        if seen != self._seen or seen is None:
            section = self._file().get(self.section) if seen is not None else None
            self._data = dict(section) if isinstance(section, dict) else {}
            self._seen = seen
        return self._data

    def _save(self) -> None:
        data = self._file()
        data[self.section] = self._data
        try:
            write_json_atomic(self.path, data)
            stat = os.stat(self.path)
            self._seen = (stat.st_mtime_ns, stat.st_size)
        except OSError as exc:  # a read-only data folder must not stop an extension
            log.warning("Could not write %s (section %r): %s", self.path, self.section, exc)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._fresh()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._fresh()[key] = value
            self._save()

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._fresh()[key]
            self._save()

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._fresh()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._fresh())

    def set(self, key: str, value: Any) -> bool:
        """diskcache's `Cache.set` (A1111 1.8+ handed extensions a diskcache)."""
        self[key] = value
        return True
