"""A1111's `modules.hashes`: file hashes with the cache in `<data>/cache.json`.

The cache is the App's (A1111's layout), so hashes A1111 or Sumi already computed are reused. Keys
are A1111's titles (`checkpoint/<name>`, `lora/<name>`, ...). `use_addnet_hash` gives the hash of a
.safetensors file's tensor data (kohya's "addnet" hash, A1111's `Lora hashes`), cached in A1111's
`hashes-addnet` section when it is there.
"""

from __future__ import annotations

from pathlib import Path

from modules import shared
from modules.sumi.services.models.hashing import HashCache, sha256_file


def calculate_sha256(filename: str) -> str:
    return sha256_file(filename)


def _addnet_cache() -> HashCache:
    return HashCache(shared.app().hash_cache.cache_file, section="hashes-addnet")


def sha256_from_cache(filename: str, title: str, use_addnet_hash: bool = False) -> str | None:
    cache = _addnet_cache() if use_addnet_hash else shared.app().hash_cache
    return cache.cached(filename, title)


def sha256(filename: str, title: str, use_addnet_hash: bool = False) -> str:
    """From the cache, else computed (reads the whole file); plain sha256 results are cached."""
    if use_addnet_hash:
        from modules.sumi.services.networks.lora import addnet_hash

        return sha256_from_cache(filename, title, True) or addnet_hash(Path(filename))
    return shared.app().hash_cache.sha256(filename, title)
