"""Card thumbnails: a small JPEG per version of a preview picture, a few decodes at a time."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from PIL import Image

from modules.sumi.services.files import thumbnails


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_a_picture_shrinks_to_fit_256_pixels_and_a_changed_one_is_made_again(tmp_path: Path):
    picture = tmp_path / "card.preview.jpg"
    Image.new("RGB", (3000, 4000), "red").save(picture, quality=90)
    first = thumbnails.thumbnail_jpeg(picture)
    assert _size(first) == (192, 256)
    Image.new("RGB", (400, 100), "blue").save(picture)
    os.utime(picture, (picture.stat().st_atime, picture.stat().st_mtime + 5))
    assert _size(thumbnails.thumbnail_jpeg(picture)) == (256, 64)


def test_a_broken_or_missing_picture_gives_nothing(tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert thumbnails.thumbnail_jpeg(broken) == b""
    assert thumbnails.thumbnail_jpeg(tmp_path / "gone.png") == b""


def test_only_a_few_pictures_are_decoded_at_once(tmp_path: Path, monkeypatch):
    now, most, lock = [0], [0], threading.Lock()

    def slow(path: Path) -> bytes:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return b"x"

    monkeypatch.setattr(thumbnails, "_shrunk", slow)
    pictures = [tmp_path / f"p{i}.png" for i in range(16)]
    for picture in pictures:
        picture.write_bytes(b"")
    threads = [threading.Thread(target=thumbnails.thumbnail_jpeg, args=(p,)) for p in pictures]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= most[0] <= 4
