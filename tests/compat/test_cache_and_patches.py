"""A1111's `modules.cache` and `modules.patches` as extensions use them: sections of cache.json kept
beside Sumi's hashes and saved at once, a value cached per file until the file changes; functions
patched per caller and put back."""

from __future__ import annotations

import json
import os
import types

import pytest

from modules import cache, patches


def test_a_section_is_kept_in_cache_json_beside_the_hashes(make_app, tmp_path):
    app = make_app(tmp_path / "data", start=False)
    app.paths.cache_file.write_text(
        json.dumps({"hashes": {"checkpoint/a": {"sha256": "x"}}}), encoding="utf-8"
    )
    assert cache.cache_filename == str(app.paths.cache_file)
    section = cache.cache("my-extension")
    assert section.get("k") is None and "k" not in section
    section["k"] = {"v": [1, 2]}
    section.set("other", 3)
    written = json.loads(app.paths.cache_file.read_text(encoding="utf-8"))
    assert written["my-extension"] == {"k": {"v": [1, 2]}, "other": 3}
    assert written["hashes"] == {"checkpoint/a": {"sha256": "x"}}  # Sumi's section untouched
    del section["other"]
    assert dict(cache.cache("my-extension")) == {"k": {"v": [1, 2]}} and len(section) == 1
    cache.dump_cache()  # A1111's delayed write: nothing left to do


def test_a_section_sees_the_file_change_on_disk(make_app, tmp_path):
    app = make_app(tmp_path / "data", start=False)
    section = cache.cache("ext")
    section["a"] = 1
    data = json.loads(app.paths.cache_file.read_text(encoding="utf-8"))
    data["ext"]["b"] = 2  # another writer (a second process, a hand edit)
    app.paths.cache_file.write_text(json.dumps(data, indent=1), encoding="utf-8")
    assert dict(section) == {"a": 1, "b": 2}


def test_a_broken_cache_file_reads_as_empty_and_is_rewritten_with_the_section(make_app, tmp_path):
    app = make_app(tmp_path / "data", start=False)
    app.paths.cache_file.write_text("{not json", encoding="utf-8")
    section = cache.cache("ext")
    assert dict(section) == {}
    section["a"] = 1
    assert json.loads(app.paths.cache_file.read_text(encoding="utf-8")) == {"ext": {"a": 1}}


def test_cached_data_for_file_computes_again_only_when_the_file_changed(make_app, tmp_path):
    make_app(tmp_path / "data", start=False)
    source = tmp_path / "model.safetensors"
    source.write_bytes(b"one")
    calls = []

    def read() -> dict:
        calls.append(1)
        return {"size": source.stat().st_size}

    assert cache.cached_data_for_file("safetensors-metadata", "lora/model", str(source), read) == {"size": 3}
    assert cache.cached_data_for_file("safetensors-metadata", "lora/model", str(source), read) == {"size": 3}
    assert len(calls) == 1
    source.write_bytes(b"longer")
    later = source.stat().st_mtime + 10
    os.utime(source, (later, later))
    assert cache.cached_data_for_file("safetensors-metadata", "lora/model", str(source), read) == {"size": 6}
    assert len(calls) == 2
    assert cache.cached_data_for_file("s", "none", str(source), lambda: None) is None  # not cached
    assert "none" not in cache.cache("s")


def test_patch_replaces_remembers_per_caller_and_undo_puts_back():
    target = types.ModuleType("target")  # a module or a class, as in A1111
    target.run = lambda: "original"  # type: ignore[attr-defined]
    replaced = patches.patch("ext_a", target, "run", lambda: "patched")
    assert target.run() == "patched" and replaced() == "original"
    assert patches.original("ext_a", target, "run")() == "original"
    assert patches.original("ext_b", target, "run") is None
    with pytest.raises(RuntimeError, match="already applied"):
        patches.patch("ext_a", target, "run", lambda: "again")
    patches.undo("ext_a", target, "run")
    assert target.run() == "original"
    with pytest.raises(RuntimeError, match="no patch for run"):
        patches.undo("ext_a", target, "run")


def test_patching_a_missing_field_is_an_error_unless_it_is_to_be_added():
    class Thing:
        pass

    with pytest.raises(AttributeError, match="missing"):
        patches.patch("ext", Thing, "missing", lambda self: 1)

    @patches.add_method(Thing, key="ext")
    def extra(self):
        return "added"

    assert Thing().extra() == "added"  # pyright: ignore[reportAttributeAccessIssue]
    patches.undo("ext", Thing, "extra")
    assert not hasattr(Thing, "extra")

    class Other:
        def name(self):
            return "before"

    @patches.patch_method(Other)
    def name(self):
        return "after"

    assert Other().name() == "after"
    patches.undo(__name__, Other, "name")
    assert Other().name() == "before"
