"""A1111's extension index (the Extensions tab's "Available" sub-tab): `index.json` read from a URL or a
local file, then filtered by tags and a search text and sorted as A1111 sorts it.

The format (AUTOMATIC1111/stable-diffusion-webui-extensions): `{"tags": {tag: description},
"extensions": [{"name", "url", "description", "tags": [...], "added": "YYYY-MM-DD"}]}`. An entry
without a `url` is left out, as in A1111. The index is read only when the user asks (the Load button):
Sumi never reaches the network on its own.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules.sumi.services.extensions.install import normalize_git_url
from modules.sumi.services.extensions.model import ExtensionError

DEFAULT_INDEX_URL = (
    "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"
)
SORT_ORDERS = ("newest first", "oldest first", "a-z", "z-a", "internal order")
DEFAULT_TAG_CHOICES = ("script", "ads", "localization", "installed")
DEFAULT_HIDDEN_TAGS = ("ads", "localization", "installed")
INSTALLED_TAG = "installed"
MAX_INDEX_BYTES = 32 * 1024 * 1024
FETCH_TIMEOUT = 30.0


@dataclass(frozen=True)
class IndexEntry:
    """One extension the index offers."""

    name: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()
    added: str = ""


@dataclass
class ExtensionIndex:
    """A loaded index: where it came from, the tag descriptions and the entries in the file's order."""

    source: str
    tags: dict[str, str] = field(default_factory=dict)
    entries: list[IndexEntry] = field(default_factory=list)

    def tag_choices(self) -> list[str]:
        """Every tag the index describes or uses, then "installed" (the tag filter's choices)."""
        names = list(self.tags)
        for entry in self.entries:
            names += [t for t in entry.tags if t not in names]
        return names + ([INSTALLED_TAG] if INSTALLED_TAG not in names else [])

    def find(self, url: str) -> IndexEntry | None:
        wanted = normalize_git_url(url)
        return next((e for e in self.entries if normalize_git_url(e.url) == wanted), None)


@dataclass(frozen=True)
class AvailableRow:
    entry: IndexEntry
    installed_as: str | None  # the folder of the installed extension with this URL

    @property
    def tags(self) -> tuple[str, ...]:
        return self.entry.tags + ((INSTALLED_TAG,) if self.installed_as else ())


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def parse_index(data: bytes | str, source: str) -> ExtensionIndex:
    """An ExtensionIndex from index.json's text; ExtensionError saying what is wrong with it."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ExtensionError(f"{source} is not an extension index (not JSON: {e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("extensions"), list):
        raise ExtensionError(f'{source} is not an extension index: it has no "extensions" list')
    raw_tags = doc.get("tags")
    tags = {str(k): _text(v) for k, v in raw_tags.items()} if isinstance(raw_tags, dict) else {}
    entries = []
    for item in doc["extensions"]:
        if not isinstance(item, dict) or not _text(item.get("url")):
            continue
        item_tags = item.get("tags")
        entries.append(
            IndexEntry(
                name=_text(item.get("name")) or "noname",
                url=_text(item.get("url")),
                description=_text(item.get("description")),
                tags=tuple(str(t) for t in item_tags if isinstance(t, str | int))
                if isinstance(item_tags, list)
                else (),
                added=_text(item.get("added")),
            )
        )
    return ExtensionIndex(source, tags, entries)


def read_index(location: str, timeout: float = FETCH_TIMEOUT) -> ExtensionIndex:
    """Read index.json from an http(s) URL, a file:// URL or a local path."""
    location = (location or "").strip()
    if not location:
        raise ExtensionError("No extension index URL or file given")
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return parse_index(_download(location, timeout), location)
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(location).path))
    elif scheme and len(scheme) > 1:  # "c:" is a Windows drive, not a scheme
        raise ExtensionError(
            f"Cannot read an extension index from {location}: use http(s)://, file:// or a path"
        )
    else:
        path = Path(location).expanduser()
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INDEX_BYTES + 1)
    except OSError as e:
        raise ExtensionError(f"Cannot read the extension index {path}: {e.strerror or e}") from None
    if len(data) > MAX_INDEX_BYTES:
        raise ExtensionError(f"{path} is larger than {MAX_INDEX_BYTES // 2**20} MiB: not an extension index")
    return parse_index(data, str(path))


def _download(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "Sumi", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_INDEX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise ExtensionError(
            f"Loading the extension index from {url} failed: HTTP {e.code} {e.reason}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ExtensionError(f"Loading the extension index from {url} failed: {reason}") from None
    if len(data) > MAX_INDEX_BYTES:
        raise ExtensionError(f"{url} is larger than {MAX_INDEX_BYTES // 2**20} MiB: not an extension index")
    return data


def _sort(rows: list[AvailableRow], order: str) -> list[AvailableRow]:
    """A1111's orders; entries without a date come last when newest first, as in A1111 ("z")."""
    if order in ("newest first", "oldest first"):
        return sorted(rows, key=lambda r: r.entry.added or "z", reverse=order == "newest first")
    if order in ("a-z", "z-a"):
        return sorted(rows, key=lambda r: r.entry.name.casefold(), reverse=order == "z-a")
    return rows


def available(
    index: ExtensionIndex,
    installed: Mapping[str, str],
    hide_tags: Iterable[str] = DEFAULT_HIDDEN_TAGS,
    order: str = SORT_ORDERS[0],
    search: str = "",
) -> tuple[list[AvailableRow], int]:
    """The rows to show and how many were hidden (by a tag in `hide_tags` or not matching `search`).

    `installed` maps a normalized remote URL to the installed extension's folder name; `search`
    matches the name or description, ignoring case.
    """
    if order not in SORT_ORDERS:
        raise ExtensionError(f"Unknown order {order!r}; one of: {', '.join(SORT_ORDERS)}")
    hidden_tags = set(hide_tags or ())
    needle = (search or "").strip().casefold()
    rows, hidden = [], 0
    for entry in index.entries:
        row = AvailableRow(entry, installed.get(normalize_git_url(entry.url)))
        if hidden_tags.intersection(row.tags) or (
            needle and needle not in entry.name.casefold() and needle not in entry.description.casefold()
        ):
            hidden += 1
            continue
        rows.append(row)
    return _sort(rows, order), hidden
