"""The textual-inversion embeddings folder: scanning, re-reading changed files, per-model views.

`EmbeddingDatabase` walks its folders recursively for `.pt .bin .safetensors .png .webp` files; the
embedding's name is the file stem (A1111; an embedding image uses the name stored in it). `refresh()`
re-reads only files whose modification time or size changed and forgets removed ones, so calling it
at the start of each job picks up edited files cheaply. When two files give the same name, the first
in sorted relative-path order wins and the other is reported in `errors`.

`for_model(model)` splits the embeddings into those the model's text encoders can use and those
skipped with A1111's reason ("1024 ≠ 768"); its `hook()` is the `token_override` for one job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modules.sumi.engine.errors import ModelLoadError
from modules.sumi.engine.model import SDModel
from modules.sumi.engine.networks.embeddings import (
    EMBEDDING_SUFFIXES,
    Embedding,
    EmbeddingHook,
    encoder_keys,
    load_embedding_file,
    partition,
)

log = logging.getLogger(__name__)


@dataclass
class ModelEmbeddings:
    """The embeddings of the database as one model sees them."""

    model: SDModel
    loaded: dict[str, Embedding]
    skipped: dict[str, str]
    skipped_embeddings: dict[str, Embedding] = field(default_factory=dict)

    def hook(self) -> EmbeddingHook:
        """A fresh `token_override` for one job (it records the embeddings the job used)."""
        specs = self.model.text_encoders
        return EmbeddingHook(self.loaded, specs, encoder_keys(self.model.family, specs))

    def api_payload(self) -> dict:
        """A1111's `/sdapi/v1/embeddings` body."""
        return {
            "loaded": {name: e.api_info() for name, e in self.loaded.items()},
            "skipped": {name: e.api_info() for name, e in self.skipped_embeddings.items()},
        }


@dataclass
class _Entry:
    stamp: tuple[int, int]
    embedding: Embedding | None
    error: str | None = None


class EmbeddingDatabase:
    """Embedding files under `folders` (recursive), loaded lazily and re-read when they change."""

    def __init__(self, folders: Iterable[str | Path], *, allow_unsafe_pickle: bool = False):
        self.folders = [Path(folder) for folder in folders]
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.errors: dict[str, str] = {}
        self.version = 0
        self._entries: dict[Path, _Entry] = {}
        self._embeddings: dict[str, Embedding] = {}
        self._lock = threading.RLock()
        self._scanned = False
        self._views: dict[int, tuple[int, ModelEmbeddings]] = {}
        self._overrides: dict[str, Embedding] = {}

    @property
    def embeddings(self) -> dict[str, Embedding]:
        """Every readable embedding by name, whatever model it suits."""
        with self._lock:
            if not self._scanned:
                self.refresh()
            return dict(self._embeddings)

    def refresh(self) -> bool:
        """Rescan the folders; re-read new and changed files. Returns whether anything changed."""
        with self._lock:
            self._scanned = True
            files = self._files()
            changed = set(self._entries) - set(files)
            for path in changed:
                del self._entries[path]
            for path, stamp in files.items():
                entry = self._entries.get(path)
                if entry is None or entry.stamp != stamp:
                    self._entries[path] = self._load(path, stamp)
                    changed.add(path)
            if changed:
                self._rebuild()
            return bool(changed)

    @contextlib.contextmanager
    def overriding(self, embedding: Embedding) -> Iterator[None]:
        """Jobs see `embedding` under its name instead of the file's (an embedding being trained: its
        samples use the vectors as they are now); the files' view is back afterwards."""
        with self._lock:
            previous = self._overrides.get(embedding.name)
            self._overrides[embedding.name] = embedding
            self._rebuild()
        try:
            yield
        finally:
            with self._lock:
                if previous is None:
                    self._overrides.pop(embedding.name, None)
                else:
                    self._overrides[embedding.name] = previous
                self._rebuild()

    def for_model(self, model: SDModel) -> ModelEmbeddings:
        """Usable and skipped embeddings for `model` (cached until the files change)."""
        with self._lock:
            embeddings = self.embeddings
            cached = self._views.get(id(model))
            if cached is not None and cached[0] == self.version and cached[1].model is model:
                return cached[1]
            loaded, skipped = partition(embeddings, model.family, model.text_encoders)
            view = ModelEmbeddings(model, loaded, skipped, {n: embeddings[n] for n in skipped})
            self._views = {id(model): (self.version, view)}
            return view

    def _files(self) -> dict[Path, tuple[int, int]]:
        found: dict[Path, tuple[int, int]] = {}
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for root, dirs, names in os.walk(folder, followlinks=True):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in names:
                    path = Path(root, name)
                    if path.suffix.lower() in EMBEDDING_SUFFIXES and not name.startswith("."):
                        try:
                            stat = path.stat()
                        except OSError:
                            continue
                        found[path] = (stat.st_mtime_ns, stat.st_size)
        return found

    def _load(self, path: Path, stamp: tuple[int, int]) -> _Entry:
        try:
            return _Entry(stamp, load_embedding_file(path, allow_unsafe_pickle=self.allow_unsafe_pickle))
        except ModelLoadError as exc:
            log.warning("embedding not loaded: %s", exc)
            return _Entry(stamp, None, str(exc))

    def _rebuild(self) -> None:
        self.version += 1
        self._embeddings = {}
        self.errors = {}
        for path in sorted(self._entries, key=self._sort_key):
            entry = self._entries[path]
            embedding = entry.embedding
            if entry.error is not None:
                self.errors[str(path)] = entry.error
            if embedding is None:
                continue
            if embedding.name in self._embeddings:
                first = self._embeddings[embedding.name].filename
                self.errors[str(path)] = (
                    f"{path}: duplicate embedding name {embedding.name!r} (using {first})"
                )
                continue
            self._embeddings[embedding.name] = embedding
        self._embeddings.update(self._overrides)

    def _sort_key(self, path: Path) -> tuple[int, str]:
        for i, folder in enumerate(self.folders):
            if path.is_relative_to(folder):
                return i, path.relative_to(folder).as_posix()
        return len(self.folders), path.as_posix()
