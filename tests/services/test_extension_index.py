"""The "Available" extension index: A1111's index.json read from a file (and a local HTTP server),
filtered by tags and search, sorted as A1111, with installed extensions recognised by their URL."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from modules.sumi.services.extensions.index import (
    DEFAULT_HIDDEN_TAGS,
    available,
    parse_index,
    read_index,
)
from modules.sumi.services.extensions.model import ExtensionError

INDEX = {
    "tags": {"script": "a new script", "tab": "a new tab", "ads": "has ads", "localization": "a language"},
    "extensions": [
        {"name": "Beta tab", "url": "https://github.com/u/beta.git", "description": "Adds a tab",
         "tags": ["tab"], "added": "2023-02-01"},
        {"name": "alpha script", "url": "https://github.com/u/alpha", "description": "Wildcards for prompts",
         "tags": ["script"], "added": "2023-05-01"},
        {"name": "Gamma", "url": "https://github.com/u/gamma", "description": "With ads",
         "tags": ["script", "ads"], "added": "2022-12-24"},
        {"name": "Undated", "url": "https://github.com/u/undated", "description": "no date", "tags": ["custom"]},
        {"name": "no url", "description": "left out"},
        "not an object",
    ],
}  # fmt: skip


@pytest.fixture
def index_file(tmp_path: Path) -> Path:
    path = tmp_path / "index.json"
    path.write_text(json.dumps(INDEX), encoding="utf-8")
    return path


def names(rows) -> list[str]:
    return [r.entry.name for r in rows]


def test_reads_a1111_index_from_a_path_and_a_file_url(index_file):
    index = read_index(str(index_file))
    assert names(available(index, {}, [], "internal order")[0]) == [
        "Beta tab",
        "alpha script",
        "Gamma",
        "Undated",
    ]
    assert read_index(index_file.as_uri()).entries == index.entries
    # the filter offers the index's tags, the ones entries use, then "installed"
    assert index.tag_choices() == ["script", "tab", "ads", "localization", "custom", "installed"]


def test_sort_orders_as_a1111(index_file):
    index = read_index(str(index_file))
    order = {o: names(available(index, {}, [], o)[0]) for o in ("newest first", "oldest first", "a-z", "z-a")}
    assert order["newest first"] == ["Undated", "alpha script", "Beta tab", "Gamma"]  # no date sorts as "z"
    assert order["oldest first"] == ["Gamma", "Beta tab", "alpha script", "Undated"]
    assert order["a-z"] == ["alpha script", "Beta tab", "Gamma", "Undated"]
    assert order["z-a"] == list(reversed(order["a-z"]))
    with pytest.raises(ExtensionError, match="Unknown order"):
        available(index, {}, [], "by stars")


def test_hidden_tags_installed_and_search(index_file):
    index = read_index(str(index_file))
    installed = {"https://github.com/u/alpha": "alpha"}  # normalized: no .git, no trailing slash
    rows, hidden = available(index, installed, DEFAULT_HIDDEN_TAGS, "a-z")
    assert names(rows) == ["Beta tab", "Undated"] and hidden == 2  # ads and installed hidden
    rows, hidden = available(index, installed, [], "a-z")
    assert [(r.entry.name, r.installed_as) for r in rows][:2] == [
        ("alpha script", "alpha"),
        ("Beta tab", None),
    ]
    assert "installed" in rows[0].tags
    rows, hidden = available(index, installed, [], "a-z", "WILDCARD")  # matches the description
    assert names(rows) == ["alpha script"] and hidden == 3
    assert names(available(index, installed, ["tab"], "a-z", "tab")[0]) == []


def test_bad_indexes_say_what_is_wrong(tmp_path):
    with pytest.raises(ExtensionError, match="not JSON"):
        parse_index("{", "x.json")
    with pytest.raises(ExtensionError, match='no "extensions" list'):
        parse_index('{"tags": {}}', "x.json")
    with pytest.raises(ExtensionError, match="Cannot read the extension index"):
        read_index(str(tmp_path / "missing.json"))
    with pytest.raises(ExtensionError, match="use http"):
        read_index("ftp://example.invalid/index.json")
    with pytest.raises(ExtensionError, match="No extension index"):
        read_index("  ")


def test_reads_an_index_over_http_and_reports_http_errors(index_file):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(index_file.parent), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert len(read_index(f"{base}/index.json").entries) == 4
        with pytest.raises(ExtensionError, match="HTTP 404"):
            read_index(f"{base}/nothing.json")
    finally:
        server.shutdown()
        server.server_close()
