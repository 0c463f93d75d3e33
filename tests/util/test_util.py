"""Sumi's small shared helpers: the file cache, atomic writes and base64 images."""

from __future__ import annotations

import os
import threading

import pytest
from PIL import Image

from modules.sumi.util.atomic import temp_beside, write_atomic, write_json_atomic, write_unique
from modules.sumi.util.b64images import data_url, decode_base64_image
from modules.sumi.util.cache import FileCache


def _touch(path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_file_cache_reuses_a_value_until_the_file_changes(tmp_path):
    path = tmp_path / "a.bin"
    _touch(path, "one", 1_000_000_000)
    cache: FileCache[str] = FileCache()
    calls = []

    def read() -> str:
        calls.append(1)
        return path.read_text()

    assert cache.get(path, read) == "one" and cache.get(path, read) == "one" and len(calls) == 1
    _touch(path, "two", 2_000_000_000)  # replaced on disk: read again
    assert cache.get(path, read) == "two" and len(calls) == 2
    _touch(path, "three", 2_000_000_000)  # same mtime, other size: read again too
    assert cache.get(path, read) == "three" and len(calls) == 3


def test_file_cache_keys_include_extra_values_and_drop_the_least_recently_used(tmp_path):
    paths = [tmp_path / f"{i}.bin" for i in range(3)]
    for p in paths:
        p.write_text(p.name)
    size = [2]
    cache: FileCache[str] = FileCache(lambda: size[0])
    assert cache.get(paths[0], lambda: "cpu", "cpu") == "cpu"
    assert cache.get(paths[0], lambda: "cuda", "cuda") == "cuda"  # another device: another entry
    cache.get(paths[0], lambda: "unused", "cpu")  # touch: now the most recent
    cache.get(paths[1], lambda: "b")
    assert len(cache) == 2
    assert cache.get(paths[0], lambda: "recomputed", "cpu") == "cpu"  # kept
    assert cache.get(paths[0], lambda: "recomputed", "cuda") == "recomputed"  # was dropped
    size[0] = 0  # the setting changed: the next insert trims everything
    assert cache.get(paths[2], lambda: "c") == "c" and len(cache) == 0


def test_file_cache_is_safe_across_threads_and_missing_files_raise(tmp_path):
    path = tmp_path / "x.bin"
    path.write_text("x")
    cache: FileCache[int] = FileCache(max_items=4)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(path, lambda: 7))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [7] * 8 and len(cache) == 1
    with pytest.raises(OSError):
        cache.get(tmp_path / "gone.bin", lambda: 1)


def test_atomic_writes_replace_whole_files_and_leave_no_temp_files(tmp_path):
    target = tmp_path / "sub" / "cfg.json"
    write_json_atomic(target, {"a": "é"})
    assert target.read_text(encoding="utf-8") == '{\n    "a": "é"\n}'
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    first = write_unique(tmp_path, ["n.png", "n-1.png"], b"1")
    second = write_unique(tmp_path, ["n.png", "n-1.png"], b"2")
    assert (first.name, second.name) == ("n.png", "n-1.png")
    with pytest.raises(FileExistsError):
        write_unique(tmp_path, ["n.png", "n-1.png"], b"3")
    with (
        pytest.raises(RuntimeError),
        temp_beside(tmp_path / "x.safetensors", suffix=".tmp.safetensors") as tmp,
    ):
        assert tmp.name.endswith(".tmp.safetensors")
        raise RuntimeError("writer failed")
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert leftovers == []


def test_base64_images_round_trip_through_data_urls():
    import io

    image = Image.new("RGB", (3, 2), (10, 20, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    url = data_url(buffer.getvalue(), "image/png")
    assert url.startswith("data:image/png;base64,")
    assert decode_base64_image(url).getpixel((2, 1)) == (10, 20, 30)
    with pytest.raises(ValueError, match="not a readable image"):
        decode_base64_image(data_url(b"not an image", "image/png"))
