"""Backups of the extension state, as A1111's config states (`<data>/config_states/*.json`).

A file holds `created_at` (seconds since the epoch), `name`, `webui` (Sumi's own git checkout: remote,
commit_hash, commit_date, branch) and `extensions` (by folder name: name, path, enabled, is_builtin,
remote, commit_hash, commit_date, branch, have_info_from_repo), so A1111's files load here and Sumi's
load in A1111.

Restoring puts each installed extension's files at the saved commit (`git reset --hard`, as A1111) and
enables or disables it as saved; an installed extension the backup does not know is disabled (A1111).
Unlike A1111 the restore happens at once (not at the next start), each result is shown, and the
built-in extensions keep the enabled state of the backup. Sumi's own checkout is recorded but never
reset from the web page: restore it with git.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from modules.sumi.services.extensions import install
from modules.sumi.services.extensions.manager import ExtensionManager
from modules.sumi.services.extensions.model import Extension, ExtensionError
from modules.sumi.util.atomic import write_json_atomic

log = logging.getLogger(__name__)

CURRENT = "Current"
DIRNAME = "config_states"
PRE_UPDATE_NAME = "Backup (pre-update)"
PRE_RESTORE_NAME = "Backup (pre-restore)"
_UNSAFE = re.compile(r"[^\w .()+-]+")


def repo_state(path: Path) -> dict[str, Any]:
    """remote, commit_hash, commit_date and branch of the git checkout at `path` (None where unknown)."""
    state: dict[str, Any] = {"remote": None, "commit_hash": None, "commit_date": None, "branch": None}
    if not (path / ".git").exists():
        return state
    where = ["-C", str(path)]
    with contextlib.suppress(ExtensionError, ValueError):
        sha, date = install.git([*where, "log", "-1", "--format=%H %ct"]).split()
        state["commit_hash"], state["commit_date"] = sha, int(date)
        state["branch"] = install.git([*where, "symbolic-ref", "--short", "-q", "HEAD"]).strip() or None
        remotes = install.git([*where, "remote"]).split()
        if remotes:
            name = "origin" if "origin" in remotes else remotes[0]
            state["remote"] = install.git([*where, "remote", "get-url", name]).strip() or None
    return state


def extension_entry(ext: Extension) -> dict[str, Any]:
    return {
        "name": ext.name,
        "path": str(ext.path),
        "enabled": ext.enabled,
        "is_builtin": ext.is_builtin,
        "remote": ext.remote,
        "commit_hash": ext.commit_hash,
        "commit_date": ext.commit_date,
        "branch": ext.branch,
        "have_info_from_repo": ext.have_info_from_repo,
    }


@dataclass
class ConfigState:
    """One backup file (or the current state, `path` None)."""

    name: str
    created_at: float
    webui: dict[str, Any]
    extensions: dict[str, dict[str, Any]]
    path: Path | None = None

    @property
    def label(self) -> str:
        """A1111's dropdown entry: "<name>: <creation time, UTC asctime>"."""
        return f"{self.name}: {time.asctime(time.gmtime(self.created_at))}"

    def to_json(self) -> dict[str, Any]:
        return {
            "created_at": self.created_at,
            "name": self.name,
            "webui": self.webui,
            "extensions": self.extensions,
        }

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> ConfigState:
        where = path.name if path else "the backup"
        if not isinstance(data, dict):
            raise ExtensionError(f"{where} is not a config state (not a JSON object)")
        created = data.get("created_at")
        exts = data.get("extensions", {})
        if not isinstance(created, int | float) or isinstance(created, bool):
            raise ExtensionError(f'{where} is not a config state: "created_at" is missing or not a number')
        if not isinstance(exts, dict) or not all(isinstance(v, dict) for v in exts.values()):
            raise ExtensionError(f'{where} is not a config state: "extensions" is not an object of objects')
        webui = data.get("webui")
        return cls(
            name=str(data.get("name") or "Config"),
            created_at=float(created),
            webui=webui if isinstance(webui, dict) else {},
            extensions={str(k): v for k, v in exts.items()},
            path=path,
        )


@dataclass
class ExtensionChange:
    """What restoring a backup does to one extension (`problem` when it cannot)."""

    name: str
    changes: list[str] = field(default_factory=list)
    problem: str | None = None
    commit: str | None = None  # the commit to check out
    enable: bool | None = None  # the enabled state to set


@dataclass
class RestoreResult:
    name: str
    ok: bool
    message: str


def _short(sha: Any) -> str:
    return str(sha)[:8] if sha else "<unknown>"


class ConfigStates:
    """Saves, lists, compares and restores backups of `manager`'s extensions (and records `repo_root`'s commit)."""

    def __init__(self, manager: ExtensionManager, repo_root: Path, folder: Path | None = None) -> None:
        self.manager = manager
        self.repo_root = Path(repo_root)
        self.folder = Path(folder) if folder else manager.data_dir / DIRNAME
        self.problems: list[str] = []  # unreadable backup files, from the last `list()`

    def current(self) -> ConfigState:
        exts = self.manager.list(refresh=True, with_repo_info=True)
        return ConfigState(
            name=CURRENT,
            created_at=datetime.now().timestamp(),
            webui=repo_state(self.repo_root),
            extensions={e.name: extension_entry(e) for e in exts},
        )

    def save(self, name: str | None = None) -> Path:
        """Write the current state to `config_states/<%Y_%m_%d-%H_%M_%S>_<name>.json`; the new file."""
        state = self.current()
        state.name = (name or "").strip() or "Config"
        stem = f"{datetime.now().strftime('%Y_%m_%d-%H_%M_%S')}_{_UNSAFE.sub('_', state.name)[:80]}"
        path = self.folder / f"{stem}.json"
        for n in range(2, 1000):
            if not path.exists():
                break
            path = self.folder / f"{stem}-{n}.json"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, state.to_json())
        except OSError as e:
            raise ExtensionError(f"Could not save the backup to {path}: {e.strerror or e}") from None
        log.info("Saved a backup of the extension state to %s", path)
        return path

    def list(self) -> list[ConfigState]:
        """Every readable backup, newest first; the unreadable ones are named in `problems`."""
        states, problems = [], []
        files = sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []
        for path in files:
            try:
                states.append(ConfigState.from_json(json.loads(path.read_text(encoding="utf-8")), path))
            except (OSError, ValueError) as e:
                problems.append(f"Cannot read the backup {path.name}: {e}")
            except ExtensionError as e:
                problems.append(str(e))
        self.problems = problems
        return sorted(states, key=lambda s: s.created_at, reverse=True)

    def get(self, label: str) -> ConfigState:
        """The backup whose label is `label` (CURRENT: the state now)."""
        if label == CURRENT:
            return self.current()
        found = next((s for s in self.list() if s.label == label), None)
        if found is None:
            raise ExtensionError(f"No saved config {label!r}; press refresh to see the saved ones")
        return found

    def plan(self, state: ConfigState) -> list[ExtensionChange]:
        """What restoring `state` would change, extension by extension (only those that change or cannot)."""
        plan = []
        installed = {e.name: e for e in self.manager.list(refresh=True, with_repo_info=True)}
        for name, ext in installed.items():
            saved = state.extensions.get(name)
            item = ExtensionChange(name)
            if saved is None:
                if ext.enabled and not ext.is_builtin:
                    item.changes.append("not in the backup: will be disabled")
                    item.enable = False
            else:
                enable = bool(saved.get("enabled", False))
                if enable != ext.enabled:
                    item.changes.append("will be enabled" if enable else "will be disabled")
                    item.enable = enable
                commit = saved.get("commit_hash")
                if not ext.is_builtin and commit and commit != ext.commit_hash:
                    if not ext.commit_hash:
                        item.problem = "not a git repository here: its commit cannot be restored"
                    else:
                        item.commit = str(commit)
                        item.changes.append(f"commit {_short(ext.commit_hash)} → {_short(commit)}")
                        if install.has_local_changes(ext):
                            item.changes.append("its local changes will be lost")
                elif not ext.is_builtin and not commit and ext.commit_hash:
                    item.problem = "the backup has no commit for it: its files are left as they are"
            if item.changes or item.problem:
                plan.append(item)
        for name, saved in state.extensions.items():
            if name not in installed and not saved.get("is_builtin"):
                remote = saved.get("remote")
                where = f": install it from {remote}" if remote else ""
                plan.append(ExtensionChange(name, problem=f"not installed{where}"))
        return plan

    def restore(self, state: ConfigState) -> list[RestoreResult]:
        """Set the enabled extensions as saved, then check out each saved commit; one result per change.

        The enabled state is stored first (refused under --freeze-settings: then nothing changes) and
        stays stored when a checkout fails, as in A1111. A backup of the state before is written first.
        """
        self.manager.check_access()
        plan = self.plan(state)
        if not any(item.changes for item in plan):
            return [RestoreResult(i.name, False, i.problem or "") for i in plan]
        self.save(PRE_RESTORE_NAME)
        wanted = {i.name: i.enable for i in plan if i.enable is not None}
        self.manager.set_disabled(e.name for e in self.manager.list() if not wanted.get(e.name, e.enabled))
        results = []
        for item in plan:
            ext = self.manager.get(item.name)
            if item.problem:
                results.append(RestoreResult(item.name, False, item.problem))
                continue
            if ext is not None and item.commit:
                try:
                    self.manager.checkout(ext, item.commit)
                except ExtensionError as e:
                    results.append(RestoreResult(item.name, False, str(e)))
                    continue
            results.append(RestoreResult(item.name, True, "; ".join(item.changes)))
        return results
