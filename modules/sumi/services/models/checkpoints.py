"""Checkpoint and VAE files on disk: discovery, A1111 names and hashes, and name matching.

Names follow A1111 (§10.1): `name` is the path relative to the folder it was found in (always with
forward slashes), `title` is `name [shorthash]` once the sha256 is known, and any alias that A1111's
`get_closet_checkpoint_match` accepts finds the same checkpoint here.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modules.sumi.services.models.hashing import HashCache, legacy_model_hash

log = logging.getLogger(__name__)

CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt")
VAE_EXTENSIONS = (".safetensors", ".pt", ".ckpt")
RE_STRIP_CHECKSUM = re.compile(r"\s*\[[^]]+]\s*$")
RE_NATURAL_SPLIT = re.compile(r"(\d+)")
VAE_AUTOMATIC = ("Automatic", "auto")
VAE_NONE = "None"


def natural_sort_key(text: str) -> list[int | str]:
    """Sort key that orders "model2" before "model10", ignoring case."""
    return [int(part) if part.isdigit() else part.lower() for part in RE_NATURAL_SPLIT.split(text)]


HiddenRule = bool | Callable[[], bool]  # A1111's `list_hidden_files` setting, read at each scan


def walk_files(root: Path, extensions: Sequence[str], include_hidden: HiddenRule = True) -> Iterator[Path]:
    """Files under `root` (recursively, following links once) whose name ends with one of `extensions`;
    files and folders whose name starts with "." only when `include_hidden` says so."""
    include_hidden = include_hidden() if callable(include_hidden) else include_hidden
    seen: set[str] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                continue
            if entry.is_dir():
                stack.append(Path(entry.path))
            elif entry.is_file() and entry.name.lower().endswith(tuple(extensions)):
                yield Path(entry.path)


def _is_vae_file(path: Path) -> bool:
    return any(path.name.lower().endswith(".vae" + ext) for ext in VAE_EXTENSIONS)


def _relative_name(path: Path, folders: Sequence[Path]) -> str:
    for folder in folders:
        try:
            return path.relative_to(folder).as_posix()
        except ValueError:
            continue
    return path.name


IN_MEMORY = "memory:"  # the `filename` of a model with no file (see CheckpointRegistry.add_in_memory)


def is_in_memory(info: CheckpointInfo) -> bool:
    return info.filename.startswith(IN_MEMORY)


class CheckpointInfo:
    """One checkpoint file and the names it answers to."""

    def __init__(
        self, filename: str | Path, name: str, hash_cache: HashCache | None = None, no_hashing: bool = False
    ) -> None:
        self.filename = str(filename)
        self.name = name.replace("\\", "/")
        self.name_for_extra = Path(self.name).stem
        self.model_name = os.path.splitext(self.name)[0].replace("/", "_")
        self.is_safetensors = self.filename.lower().endswith(".safetensors")
        self._hash_cache = hash_cache
        self._no_hashing = no_hashing
        self._legacy_hash: str | None = None
        self._title: str | None = None  # set by an extension that renames a copy (supermerger)
        self.sha256: str | None = None
        if hash_cache is not None and not no_hashing:
            self.sha256 = hash_cache.cached(self.filename, self.cache_key)

    def __deepcopy__(self, memo: dict) -> CheckpointInfo:
        """A copy sharing the hash cache (A1111's infos are plain objects extensions deep-copy and
        rename: supermerger names its merge that way)."""
        clone = copy.copy(self)
        clone.__dict__ = {
            k: (v if k == "_hash_cache" else copy.deepcopy(v, memo)) for k, v in vars(self).items()
        }
        return clone

    @property
    def cache_key(self) -> str:
        return f"checkpoint/{self.name}"

    @property
    def hash(self) -> str | None:
        """First 10 hex digits of the sha256 (A1111's `shorthash`), None until hashed."""
        return self.sha256[:10] if self.sha256 else None

    shorthash = hash

    @property
    def legacy_hash(self) -> str:
        """A1111's old 8-hex hash (cheap: reads 64 KiB)."""
        if self._legacy_hash is None:
            try:
                self._legacy_hash = legacy_model_hash(self.filename)
            except OSError:
                self._legacy_hash = "NOFILE"
        return self._legacy_hash

    @property
    def title(self) -> str:
        if self._title is not None:
            return self._title
        return self.name if self.hash is None else f"{self.name} [{self.hash}]"

    @title.setter
    def title(self, value: str) -> None:
        self._title = str(value)

    @property
    def short_title(self) -> str:
        return self.name_for_extra if self.hash is None else f"{self.name_for_extra} [{self.hash}]"

    def calculate_hash(self) -> str | None:
        """Compute (or read from the cache) the sha256 and return the short hash; None with --no-hashing."""
        if self._no_hashing or self._hash_cache is None:
            return None
        self.sha256 = self._hash_cache.sha256(self.filename, self.cache_key)
        return self.hash

    calculate_shorthash = calculate_hash  # A1111's name: extensions call it on the infos they are given

    def ids(self) -> list[str]:
        """Every alias A1111 accepts for this checkpoint, most specific first."""
        ids = [
            self.title,
            self.name,
            os.path.splitext(self.name)[0],  # "sub/model": the name without its extension
            self.model_name,
            self.name_for_extra,
            self.legacy_hash,
            f"{self.name} [{self.legacy_hash}]",
        ]
        if self.sha256:
            ids += [
                self.hash or "",
                self.sha256,
                f"{self.name} [{self.hash}]",
                f"{self.name_for_extra} [{self.hash}]",
            ]
        return ids

    def __repr__(self) -> str:
        return f"CheckpointInfo({self.title!r}, {self.filename!r})"


class CheckpointRegistry:
    """The checkpoints found in the checkpoint folders (plus `--ckpt`), sorted by name."""

    def __init__(
        self,
        ckpt_dirs: Sequence[str | Path],
        hash_cache: HashCache | None = None,
        no_hashing: bool = False,
        extra_files: Iterable[str | Path] = (),
        include_hidden: HiddenRule = True,
    ) -> None:
        self.ckpt_dirs = [Path(d).resolve() for d in ckpt_dirs]
        self.extra_files = [Path(f).resolve() for f in extra_files]
        self.hash_cache = hash_cache
        self.no_hashing = no_hashing
        self.include_hidden = include_hidden
        self._lock = threading.Lock()
        self._infos: list[CheckpointInfo] = []
        self._in_memory: list[CheckpointInfo] = []  # merges being tried: listed, with no file
        self.refresh()

    def _scan(self) -> Iterator[Path]:
        for folder in self.ckpt_dirs:
            for path in walk_files(folder, CHECKPOINT_EXTENSIONS, self.include_hidden):
                if not _is_vae_file(path):
                    yield path
        for path in self.extra_files:
            if path.is_file():
                yield path

    def refresh(self) -> list[CheckpointInfo]:
        """Rescan the folders; returns the new list."""
        infos: dict[str, CheckpointInfo] = {}
        seen_files: set[str] = set()
        for path in self._scan():
            real = os.path.realpath(path)
            name = _relative_name(path, self.ckpt_dirs)
            if real in seen_files or name in infos:
                log.debug("Skipping %s: already listed", path)
                continue
            seen_files.add(real)
            infos[name] = CheckpointInfo(path, name, self.hash_cache, self.no_hashing)
        ordered = sorted(infos.values(), key=lambda i: natural_sort_key(i.name))
        with self._lock:
            self._infos = ordered
            return [*ordered, *self._in_memory]

    def add_in_memory(self, name: str) -> CheckpointInfo:
        """List a model that lives only in memory (a merge being tried) as `<name> (in memory)`."""
        info = CheckpointInfo(f"{IN_MEMORY}{name}", f"{name} (in memory)", no_hashing=True)
        with self._lock:
            self._in_memory = [i for i in self._in_memory if i.name != info.name] + [info]
        return info

    def remove_in_memory(self, info: CheckpointInfo) -> None:
        with self._lock:
            self._in_memory = [i for i in self._in_memory if i is not info]

    def add_file(self, path: str | Path) -> CheckpointInfo | None:
        """Add a checkpoint file from outside the folders (`--ckpt`); returns its entry, None if no such file."""
        path = Path(path).resolve()
        if not path.is_file():
            return None
        if path not in self.extra_files:
            self.extra_files.append(path)
        self.refresh()
        real = os.path.realpath(path)
        return next((i for i in self.list() if os.path.realpath(i.filename) == real), None)

    def list(self) -> list[CheckpointInfo]:
        with self._lock:
            return [*self._infos, *self._in_memory]

    def titles(self) -> list[str]:
        return [info.title for info in self.list()]

    def calculate_all_hashes(self, threads: int = 1) -> tuple[list[str], list[str]]:
        """The sha256 of every checkpoint file not hashed yet (A1111's "Calculate hash for all
        checkpoint"), `threads` files at a time: (titles hashed, "title: why" for those that failed)."""
        if self.no_hashing or self.hash_cache is None:
            raise ValueError("Checkpoint hashing is turned off (--no-hashing)")
        todo = [info for info in self.list() if not is_in_memory(info) and info.sha256 is None]
        hashed: list[str] = []
        failed: list[str] = []

        def one(info: CheckpointInfo) -> None:
            name = info.name
            try:
                info.calculate_hash()
            except OSError as exc:
                failed.append(f"{name}: {exc.strerror or exc}")
                return
            hashed.append(info.title)

        with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
            list(pool.map(one, todo))
        return hashed, failed

    def get(self, title: str) -> CheckpointInfo | None:
        """The checkpoint with exactly this title (or name), else None."""
        for info in self.list():
            if title in (info.title, info.name):
                return info
        return None

    def lookup(self, name: str | None) -> CheckpointInfo | None:
        """The checkpoint `name` is an exact alias of (A1111's `checkpoint_aliases`: title, name,
        model name, stem, or a hash, alone or after the name); never a part of a name."""
        if not name:
            return None
        infos = self.list()
        for candidate in dict.fromkeys((name, name.replace("\\", "/"))):
            found = _match_alias(infos, candidate)
            if found is not None:
                return found
        return None

    def match(self, name: str | None) -> CheckpointInfo | None:
        """A1111's `get_closet_checkpoint_match`: any alias, else the shortest title containing `name`."""
        if not name:
            return None
        infos = self.list()
        for candidate in dict.fromkeys((name, name.replace("\\", "/"))):
            found = _match_alias(infos, candidate) or _match_substring(infos, candidate)
            if found is None:
                found = _match_substring(infos, RE_STRIP_CHECKSUM.sub("", candidate))
            if found is not None:
                return found
        return None

    def first(self) -> CheckpointInfo | None:
        infos = self.list()
        return infos[0] if infos else None

    @staticmethod
    def config_yaml_for(info: CheckpointInfo) -> Path | None:
        """`<stem>.yaml` beside the checkpoint, which overrides config detection (A1111 §10.2)."""
        path = Path(os.path.splitext(info.filename)[0] + ".yaml")
        return path if path.is_file() else None


def _match_alias(infos: Sequence[CheckpointInfo], name: str) -> CheckpointInfo | None:
    """Exact title or name first (so another file's stem cannot shadow them), then every other alias."""
    for info in infos:
        if name in (info.title, info.name):
            return info
    for info in infos:
        if name in info.ids():
            return info
    return None


def _match_substring(infos: Sequence[CheckpointInfo], name: str) -> CheckpointInfo | None:
    if not name:
        return None
    found = [info for info in infos if name in info.title]
    return min(found, key=lambda i: len(i.title)) if found else None


class VaeRegistry:
    """VAE files: everything in the VAE folders plus `*.vae.*` files among the checkpoints (§10.3)."""

    def __init__(
        self,
        vae_dirs: Sequence[str | Path],
        ckpt_dirs: Sequence[str | Path] = (),
        forced_path: str | Path | None = None,
        hash_cache: HashCache | None = None,
        include_hidden: HiddenRule = True,
    ) -> None:
        self.vae_dirs = [Path(d).resolve() for d in vae_dirs]
        self.ckpt_dirs = [Path(d).resolve() for d in ckpt_dirs]
        self.forced_path = Path(forced_path).resolve() if forced_path else None
        self.hash_cache = hash_cache
        self.include_hidden = include_hidden
        self._lock = threading.Lock()
        self._files: dict[str, Path] = {}
        self.refresh()

    def _scan(self) -> Iterator[Path]:
        for folder in self.ckpt_dirs:
            yield from (p for p in walk_files(folder, VAE_EXTENSIONS, self.include_hidden) if _is_vae_file(p))
        for folder in self.vae_dirs:
            yield from walk_files(folder, VAE_EXTENSIONS, self.include_hidden)

    def refresh(self) -> dict[str, Path]:
        """Rescan; VAEs are keyed by file name (with extension), the first one found wins."""
        files: dict[str, Path] = {}
        for path in self._scan():
            files.setdefault(path.name, path)
        ordered = dict(sorted(files.items(), key=lambda kv: natural_sort_key(kv[0])))
        with self._lock:
            self._files = ordered
        return dict(ordered)

    def files(self) -> dict[str, Path]:
        with self._lock:
            return dict(self._files)

    def names(self) -> list[str]:
        """Choices for opt `sd_vae`: Automatic, None, then every VAE file name."""
        return [VAE_AUTOMATIC[0], VAE_NONE, *self.files()]

    def find_near_checkpoint(self, checkpoint_file: str | Path) -> Path | None:
        """The VAE named after the checkpoint: `<stem>.vae.*` first, else one whose name starts with the stem.

        Unlike A1111 the stem must end at a word boundary, so `sd.safetensors` no longer picks
        `sdxl_vae.safetensors`; `model.vae.pt`, `model.safetensors` and `model-vae.pt` still match `model`.
        """
        stem = Path(checkpoint_file).name.rsplit(".", 1)[0].lower()
        files = {name.lower(): path for name, path in self.files().items()}
        for name, path in files.items():
            if name.startswith(stem + ".vae."):
                return path
        for name, path in files.items():
            rest = name[len(stem) :]
            if name.startswith(stem) and rest and not rest[0].isalnum():
                return path
        return None

    def lookup(self, name: str) -> Path:
        """The VAE file called `name`; ValueError listing the choices when there is none."""
        path = self.files().get(name)
        if path is None:
            raise ValueError(f"VAE {name!r} not found; choices: {', '.join(self.names())}")
        return path

    def resolve(
        self,
        ckpt_info: CheckpointInfo | None,
        sd_vae: str,
        overrides_per_model_preferences: bool = True,
        user_metadata_vae: str | None = None,
    ) -> Path | None:
        """The VAE file to load with a checkpoint, or None for the checkpoint's own VAE (A1111 §10.3).

        Order: --vae-path; opt `sd_vae` when it overrides per-model preferences; the checkpoint's
        user metadata; a VAE named after the checkpoint; opt `sd_vae`.
        """
        if self.forced_path is not None:
            return self.forced_path
        automatic = sd_vae in VAE_AUTOMATIC
        if overrides_per_model_preferences and not automatic:
            return self._from_setting(sd_vae)
        if user_metadata_vae:
            if user_metadata_vae == VAE_NONE:
                return None
            if user_metadata_vae in self.files():
                return self.files()[user_metadata_vae]
        if ckpt_info is not None:
            near = self.find_near_checkpoint(ckpt_info.filename)
            if near is not None:
                return near
        return None if automatic else self._from_setting(sd_vae)

    def _from_setting(self, sd_vae: str) -> Path | None:
        return None if sd_vae == VAE_NONE else self.lookup(sd_vae)

    def short_hash(self, path: str | Path) -> str | None:
        """10-hex sha256 of a VAE file for the infotext (`VAE hash`), cached under `vae/<file name>`."""
        if self.hash_cache is None:
            return None
        return self.hash_cache.sha256(path, f"vae/{Path(path).name}")[:10]
