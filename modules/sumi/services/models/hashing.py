"""File hashes as A1111 computes them, with the sha256 cache kept in `cache.json`.

The cache layout is A1111's, so a `cache.json` copied from A1111 is reused without re-hashing:
``{"hashes": {"checkpoint/<name>": {"mtime": 1700000000.0, "sha256": "...", "size": 2132625894}}}``.
Sumi adds `size`; an entry is stale when the file's mtime or size differ from it. Other sections of
the file (written by extensions) are kept untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)

BLOCK_SIZE = 1 << 20
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000


def sha256_file(path: str | Path, progress: Callable[[int], None] | None = None) -> str:
    """sha256 of the whole file, read in 1 MiB blocks; `progress(bytes_read)` after each block."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while block := f.read(BLOCK_SIZE):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done)
    return digest.hexdigest()


def legacy_model_hash(path: str | Path) -> str:
    """A1111's old 8-hex model hash: sha256 of the 64 KiB at offset 1 MiB (still accepted as an alias)."""
    with open(path, "rb") as f:
        f.seek(LEGACY_OFFSET)
        return hashlib.sha256(f.read(LEGACY_LENGTH)).hexdigest()[:8]


class HashCache:
    """Thread-safe sha256 cache backed by one JSON file (A1111's `cache.json`)."""

    def __init__(self, cache_file: str | Path, section: str = "hashes") -> None:
        self.cache_file = Path(cache_file)
        self.section = section
        self._lock = threading.RLock()
        self._section: dict[str, Any] | None = None

    def _read_file(self) -> dict[str, Any]:
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            backup = self.cache_file.with_name(self.cache_file.name + ".corrupt")
            log.warning(
                "Hash cache %s is unreadable (%s); moved it to %s and starting afresh",
                self.cache_file,
                e,
                backup,
            )
            os.replace(self.cache_file, backup)
            return {}

    def _entries(self) -> dict[str, Any]:
        if self._section is None:
            section = self._read_file().get(self.section)
            self._section = section if isinstance(section, dict) else {}
        return self._section

    def cached(self, path: str | Path, key: str) -> str | None:
        """The cached sha256 of `path` under `key` (e.g. "checkpoint/sub/x.safetensors"), if still valid."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        with self._lock:
            entry = self._entries().get(key)
        if not isinstance(entry, dict) or not entry.get("sha256"):
            return None
        if entry.get("mtime") != st.st_mtime:
            return None
        if "size" in entry and entry["size"] != st.st_size:
            return None
        return str(entry["sha256"])

    def sha256(self, path: str | Path, key: str, progress: Callable[[int], None] | None = None) -> str:
        """sha256 of `path`, from the cache or computed (slow: reads the whole file) and then cached."""
        hit = self.cached(path, key)
        if hit is not None:
            return hit
        st = os.stat(path)
        digest = sha256_file(path, progress)
        with self._lock:
            self._entries()[key] = {"mtime": st.st_mtime, "sha256": digest, "size": st.st_size}
            self._save()
        return digest

    def forget(self, key: str) -> None:
        with self._lock:
            if self._entries().pop(key, None) is not None:
                self._save()

    def _save(self) -> None:
        """Re-read the file and replace only our section, so other sections' writers are not undone."""
        try:
            data = self._read_file()
            data[self.section] = self._entries()
            write_json_atomic(self.cache_file, data)
        except OSError as e:  # a read-only data dir must not stop generation
            log.warning("Could not write hash cache %s: %s", self.cache_file, e)
