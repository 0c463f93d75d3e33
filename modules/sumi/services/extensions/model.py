"""An extension as A1111 describes it: its folder, `metadata.ini`, git facts and the errors of
extension actions, plus the access rule for managing extensions on a reachable server."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ACCESS_DENIED = "extension access disabled because of command line flags"
_LOOPBACK = re.compile(r"^(localhost|127(\.\d{1,3}){3}|::1|\[::1\])$", re.IGNORECASE)


class ExtensionError(Exception):
    """An extension action failed; the message is meant for the user."""


class ExtensionAccessError(ExtensionError):
    """Installing, updating or enabling extensions is not allowed with these command-line flags."""

    def __init__(self, message: str = ACCESS_DENIED) -> None:
        super().__init__(message)


def is_non_local(args: Any) -> bool:
    """True when other machines can reach the server: --listen, --share, --ngrok or a non-loopback --server-name."""
    server_name = getattr(args, "server_name", None)
    return bool(
        getattr(args, "listen", False)
        or getattr(args, "share", False)
        or getattr(args, "ngrok", None)
        or (server_name and not _LOOPBACK.match(str(server_name).strip()))
    )


def extension_access_allowed(args: Any) -> bool:
    """A1111's gate: extension management only on a local server or with --enable-insecure-extension-access."""
    return bool(getattr(args, "enable_insecure_extension_access", False)) or not is_non_local(args)


def parse_list(text: str) -> list[str]:
    """A metadata.ini list: "ext1 ext2, ext3" -> ["ext1", "ext2", "ext3"] (commas and spaces separate)."""
    return [x for x in re.split(r"[,\s]+", text.strip()) if x]


@dataclass
class ExtensionMetadata:
    """`metadata.ini`: `[Extension] Name/Requires`, per-file `[scripts/x.py] Requires/Before/After`."""

    name: str
    config: configparser.ConfigParser = field(default_factory=configparser.ConfigParser, repr=False)
    problem: str | None = None

    @property
    def canonical_name(self) -> str:
        return self.name.lower().strip()

    @classmethod
    def read(cls, path: Path) -> ExtensionMetadata:
        config = configparser.ConfigParser(interpolation=None)
        problem = None
        try:
            config.read(path / "metadata.ini", encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as e:
            problem = f"Error reading metadata.ini of extension {path.name}: {e}"
            config = configparser.ConfigParser(interpolation=None)
        name = config.get("Extension", "Name", fallback="").strip() or path.name
        return cls(name=name, config=config, problem=problem)

    def requirements(self, key: str, section: str, extra_section: str | None = None) -> list[str]:
        """Lower-cased names listed under `key` ("Requires", "Before", "After") in `section` (+ `extra_section`)."""
        text = self.config.get(section, key, fallback="")
        if extra_section:
            text += "," + self.config.get(extra_section, key, fallback="")
        return parse_list(text.lower())


@dataclass
class Extension:
    """One folder under `extensions/` or `extensions-builtin/` (A1111's `Extension`, same field names)."""

    name: str
    path: Path
    is_builtin: bool = False
    enabled: bool = True
    metadata: ExtensionMetadata = field(default_factory=lambda: ExtensionMetadata(""))
    remote: str | None = None
    branch: str | None = None
    commit_hash: str | None = None  # full 40-hex sha, as A1111; `version` is its 8-hex prefix
    commit_date: int | None = None  # committer time, seconds since the epoch
    version: str = ""
    have_info_from_repo: bool = False
    can_update: bool = False
    status: str = "unknown"
    # What the last "Check for updates" saw on the remote branch: its commit, that commit's date and
    # how many commits it is ahead of HEAD (None where unknown).
    remote_commit_hash: str | None = None
    remote_commit_date: int | None = None
    remote_commits_ahead: int | None = None

    @property
    def canonical_name(self) -> str:
        return self.metadata.canonical_name or self.name.lower()

    @property
    def key(self) -> str:
        """Unique id across both folders: "builtin/<name>" for built-ins, else the folder name."""
        return ("builtin/" if self.is_builtin else "") + self.name

    def list_files(self, subdir: str, suffix: str) -> list[Path]:
        """Files `<path>/<subdir>/*<suffix>` (case-insensitive suffix), sorted by name."""
        folder = self.path / subdir
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.suffix.lower() == suffix and p.is_file())


class ExtensionFile(NamedTuple):
    """A file an extension contributes; `extension` is None for the app's own files (`root_dir`)."""

    extension: Extension | None
    path: Path


@dataclass
class InstallResult:
    name: str
    path: Path
    output: str
