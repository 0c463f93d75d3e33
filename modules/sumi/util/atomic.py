"""Atomic file writes: a temp file beside the target, flushed, then renamed or linked into place.

Readers never see half a file, a crash never leaves one, and two writers racing for a fresh name
(`write_unique`) never take the same one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def temp_beside(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temp path in `target`'s folder (created if missing) that is removed unless the caller moved it.
    `suffix` is for writers that choose the format from the file name (".tmp.safetensors")."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_temp(directory: Path, data: bytes, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _claim(tmp: Path, target: Path, overwrite: bool) -> bool:
    """Move the finished temp file to `target`; False if the name is taken (and not to be overwritten)."""
    if overwrite:
        os.replace(tmp, target)
        return True
    try:
        os.link(tmp, target)  # atomic and fails if the name exists
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network or FAT drives): reserve the name, then rename
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        os.replace(tmp, target)
        return True
    tmp.unlink()
    return True


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` (replacing any existing file); the folder is created if missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _claim(_write_temp(path.parent, data, f".{path.name}."), path, overwrite=True)
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write `data` as indented UTF-8 JSON to `path`, atomically."""
    return write_atomic(path, json.dumps(data, indent=4, ensure_ascii=False).encode("utf-8"))


def write_unique(directory: Path, names: Sequence[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write `data` under the first of `names` in `directory` that is free (or the first, with
    `overwrite`); FileExistsError when every name is taken."""
    tmp = _write_temp(directory, data, ".sumi-")
    try:
        for name in names:
            if _claim(tmp, directory / name, overwrite):
                return directory / name
    finally:
        tmp.unlink(missing_ok=True)
    raise FileExistsError(f"no free file name in {directory} (tried {names[0]} to {names[-1]})")


def save_atomic(target: str | Path, save: Callable[[Path], object]) -> Path:
    """`save(path)` writes a file at a temp path beside `target` (named `.<target>.<random>.tmp<suffix>`,
    for writers that choose the format by suffix), which is then renamed into place; on any error
    (a full disk) the temp file is removed and `target` was never touched."""
    target = Path(target)
    with temp_beside(target, suffix=f".tmp{target.suffix}") as tmp:
        save(tmp)
        os.replace(tmp, target)
    return target


_NOT_IN_FILE_NAMES = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")


def is_plain_file_name(name: str) -> bool:
    """A name that stays in its folder on every OS: no separators, no reserved characters, no leading dot."""
    return bool(name) and not _NOT_IN_FILE_NAMES.search(name) and not name.startswith(".")
