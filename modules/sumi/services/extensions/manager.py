"""Extensions: discovery, enable state and load order, in A1111's `extensions/<name>/` layout.

`ExtensionManager` is a service owned by the App. It finds extensions in `extensions-builtin/` and
`<data>/extensions/`, says which are active (opts `disabled_extensions` / `disable_all_extensions`,
flags `--disable-all-extensions` / `--disable-extra-extensions`), orders their files as A1111 does
(`metadata.ini` Requires/Before/After), runs `preload.py`, and installs, updates and checks them
through git (the work is in `modules.sumi.services.extensions.install`). It never imports an extension's scripts:
that is the Script API's job.

Deliberate differences from A1111:
* `[Extension] Name` in metadata.ini is honoured (A1111 reads it and then overwrites it with the
  folder name); a `Requires` may name an extension by either.
* `--server-name` set to a loopback address (127.0.0.1, localhost, ::1) counts as local.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modules.sumi.engine.errors import EngineError
from modules.sumi.services.extensions import install
from modules.sumi.services.extensions.conflicts import (
    Conflict,
    conflicts_in,
    recorded_in_process,
    requirement_lines,
    unique,
)
from modules.sumi.services.extensions.model import (
    Extension,
    ExtensionAccessError,
    ExtensionError,
    ExtensionFile,
    ExtensionMetadata,
    InstallResult,
    extension_access_allowed,
)
from modules.sumi.services.extensions.pins import core_pins

log = logging.getLogger(__name__)

DISABLE_MODES = ("none", "extra", "all")


class ExtensionManager:
    """Finds, orders, enables, installs and updates extensions. Thread-safe for installs/updates."""

    def __init__(
        self,
        extensions_dir: str | Path,
        builtin_dir: str | Path | None,
        options: Any,
        args: Any,
        *,
        data_dir: str | Path | None = None,
        config_file: str | Path | None = None,
        cache_file: str | Path | None = None,
        write_settings: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.extensions_dir = Path(extensions_dir)
        # The settings service's `set` (checks, --freeze-settings, atomic save, rollback); without one,
        # the options are set and saved directly (a manager built on its own, e.g. by a test or script).
        self.write_settings = write_settings
        self.builtin_dir = Path(builtin_dir) if builtin_dir else None
        self.options = options
        self.args = args if args is not None else argparse.Namespace()
        self.data_dir = Path(data_dir) if data_dir else self.extensions_dir.parent
        self.tmp_dir = self.data_dir / "tmp"
        self.config_file = Path(config_file) if config_file else None
        self.cache_file = Path(cache_file) if cache_file else self.data_dir / "cache.json"
        self.problems: list[str] = []  # duplicate names, unreadable metadata, missing requirements
        self._extensions: list[Extension] | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_paths(
        cls,
        paths: Any,
        options: Any,
        args: Any,
        write_settings: Callable[[dict[str, Any]], None] | None = None,
    ) -> ExtensionManager:
        """Built from `modules.paths.DataPaths`."""
        return cls(
            paths.extensions_dir,
            paths.extensions_builtin_dir,
            options,
            args,
            data_dir=paths.data_dir,
            config_file=paths.config_file,
            cache_file=paths.cache_file,
            write_settings=write_settings,
        )

    # --- discovery -----------------------------------------------------------------------------

    def refresh(self) -> list[Extension]:
        """Scan both folders again (cheap: no git); git details are read by `read_info`."""
        disabled = set(self._opt("disabled_extensions", []) or [])
        found: list[Extension] = []
        seen: dict[str, Extension] = {}
        problems: list[str] = []
        folders = [(self.builtin_dir, True), (self.extensions_dir, False)]
        for folder, builtin in folders:
            if folder is None or not folder.is_dir():
                continue
            for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                metadata = ExtensionMetadata.read(path)
                if metadata.problem:
                    problems.append(metadata.problem)
                ext = Extension(path.name, path, builtin, path.name not in disabled, metadata)
                other = seen.get(ext.canonical_name)
                if other is not None and other.is_builtin:
                    problems.append(f'"{ext.name}" in {folder} is not loaded: Sumi has it built in.')
                    continue
                if other is not None:
                    problems.append(
                        f'Duplicate canonical name "{ext.canonical_name}" found in extensions '
                        f'"{ext.name}" and "{other.name}"; "{ext.name}" is not loaded.'
                    )
                    continue
                seen[ext.canonical_name] = ext
                found.append(ext)
        with self._lock:
            self._extensions = found
            self.problems = problems + self._requirement_problems(found)
        for message in self.problems:
            log.warning("%s", message)
        return list(found)

    def list(self, refresh: bool = False, with_repo_info: bool = False) -> list[Extension]:
        """Every extension, built-ins first, each folder sorted by name (A1111's order)."""
        extensions = self.refresh() if refresh or self._extensions is None else list(self._extensions)
        if with_repo_info:
            for ext in extensions:
                if not ext.have_info_from_repo:
                    self.read_info(ext)
        return extensions

    def get(self, name: str) -> Extension | None:
        """The extension in folder `name` (or "builtin/<name>"); user extensions win over built-ins."""
        matches = [e for e in self.list() if name in (e.name, e.key)]
        return next((e for e in matches if not e.is_builtin), matches[0] if matches else None)

    def disable_mode(self) -> str:
        """ "all", "extra" (only built-ins load) or "none", from the flags first, then the option."""
        if getattr(self.args, "disable_all_extensions", False):
            return "all"
        if getattr(self.args, "disable_extra_extensions", False):
            return "extra"
        mode = self._opt("disable_all_extensions", "none")
        return mode if mode in DISABLE_MODES else "none"

    def active(self) -> list[Extension]:
        """The extensions that load, in `list()` order."""
        mode = self.disable_mode()
        if mode == "all":
            return []
        return [e for e in self.list() if e.enabled and (e.is_builtin or mode == "none")]

    # --- enable state --------------------------------------------------------------------------

    def check_access(self) -> None:
        if not extension_access_allowed(self.args):
            raise ExtensionAccessError()

    def set_disabled(self, names: Iterable[str], disable_all: str | None = None) -> None:
        """Store opt `disabled_extensions` (folder names) and, if given, `disable_all_extensions`; save config.json."""
        self.check_access()
        if disable_all is not None and disable_all not in DISABLE_MODES:
            raise ExtensionError(
                f"disable_all_extensions must be one of {list(DISABLE_MODES)}, got {disable_all!r}"
            )
        disabled = list(dict.fromkeys(str(n) for n in names))
        values: dict[str, Any] = {"disabled_extensions": disabled}
        if disable_all is not None:
            values["disable_all_extensions"] = disable_all
        if self.write_settings is not None:
            try:
                self.write_settings(values)
            except (EngineError, OSError, RuntimeError) as exc:  # refused (--freeze-settings) or not saved
                # nothing changed, in memory or in config.json
                raise ExtensionError(str(exc)) from exc
        else:
            for key, value in values.items():
                self._set_opt(key, value)
            if self.config_file is not None and hasattr(self.options, "save"):
                self.options.save(self.config_file)
        with self._lock:
            for ext in self._extensions or []:
                ext.enabled = ext.name not in disabled

    # --- files in load order -------------------------------------------------------------------

    def script_files(self, root_dir: str | Path | None = None) -> list[ExtensionFile]:
        """`scripts/*.py` of active extensions in A1111's load order; files of `root_dir` (the app's own) join in."""
        return self.ordered_files("scripts", ".py", root_dir)

    def javascript_files(self, suffix: str = ".js") -> list[ExtensionFile]:
        """`javascript/*.js` (or ".mjs") of active extensions, ordered like scripts."""
        return self.ordered_files("javascript", suffix)

    def style_files(self) -> list[ExtensionFile]:
        """`style.css` of each active extension that has one."""
        return [
            ExtensionFile(e, e.path / "style.css") for e in self.active() if (e.path / "style.css").is_file()
        ]

    def ordered_files(
        self, subdir: str, suffix: str, root_dir: str | Path | None = None
    ) -> list[ExtensionFile]:
        """A1111's `list_scripts`: sorted files, then a topological sort by metadata Requires/Before/After."""
        active = self.active()
        resolve = self._resolver()
        files: dict[str, ExtensionFile] = {}
        after: dict[str, list[str]] = {}
        before: dict[str, list[str]] = {}
        requires: dict[str, list[str]] = {}
        by_extension: dict[str, list[str]] = {e.canonical_name: [] for e in active}
        if root_dir is not None and Path(root_dir).is_dir():
            for path in sorted(
                p for p in Path(root_dir).iterdir() if p.suffix.lower() == suffix and p.is_file()
            ):
                files[path.name] = ExtensionFile(None, path)
                after[path.name], before[path.name], requires[path.name] = [], [], []
        for ext in active:
            for path in ext.list_files(subdir, suffix):
                key = ("builtin/" if ext.is_builtin else "") + ext.canonical_name + "/" + path.name
                section = f"{subdir}/{path.name}"
                files[key] = ExtensionFile(ext, path)
                after[key] = resolve(ext.metadata.requirements("After", section, subdir))
                before[key] = resolve(ext.metadata.requirements("Before", section, subdir))
                requires[key] = resolve(ext.metadata.requirements("Requires", section, subdir))
                by_extension[ext.canonical_name].append(key)
        for key in files:  # one pass, as A1111 (the order of `after` lists depends on it)
            for target in before[key]:  # "Before X" is "X after me"; X is a file or a whole extension
                for other in ([target] if target in files else []) + by_extension.get(target, []):
                    after[other].append(key)
            for target in list(after[key]):  # "After <extension>" is after each of its files
                if target not in files and target in by_extension:
                    after[key].remove(target)
                    after[key].extend(by_extension[target])
            for target in requires[key]:
                if target not in files and target not in by_extension:
                    log.warning('Script "%s" requires "%s" to be loaded, but it is not.', key, target)
        return [files[key] for key in topological_sort(after)]

    # --- preload.py ----------------------------------------------------------------------------

    def preload(self, parser: argparse.ArgumentParser) -> list[str]:
        """Run `preload(parser)` of each active extension's preload.py; returns one message per failure."""
        failures = []
        for ext in self.active():
            script = ext.path / "preload.py"
            if not script.is_file():
                continue
            try:
                spec = importlib.util.spec_from_file_location(f"sumi_preload_{_identifier(ext.key)}", script)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {script}")
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                if hasattr(module, "preload"):
                    module.preload(parser)
            except (Exception, SystemExit):
                message = (
                    f"Error running preload() of extension {ext.name} ({script}):\n{traceback.format_exc()}"
                )
                log.error("%s", message)
                failures.append(message)
        return failures

    # --- git and install.py (see modules.sumi.services.extensions.install) ------------------------------------

    def read_info(self, ext: Extension) -> Extension:
        """Fill remote, branch, commit_hash, commit_date and version from the extension's git repository."""
        return install.read_repo_info(ext)

    def install_from_url(
        self, url: str, branch: str | None = None, dirname: str | None = None
    ) -> InstallResult:
        """Clone `url` into extensions/, run its install.py, return its output (A1111's "Install from URL")."""
        self.check_access()
        with self._lock:
            known = [self.read_info(e).remote for e in self.list(refresh=True) if not e.is_builtin]
            path = install.clone_extension(url, self.extensions_dir, self.tmp_dir, branch, dirname, known)
        self.refresh()
        ext = self.get(path.name)
        if ext is None:  # e.g. its metadata.ini Name is taken by another extension
            raise ExtensionError(
                f"Installed into {path}, but it cannot be loaded: " + " ".join(self.problems)
            )
        try:
            output = self.run_install_script(ext)
        except install.InstallScriptError as e:
            raise install.InstallScriptError(
                f"Installed {ext.name} into {path}, but {e}", output=e.output, extension=ext.name
            ) from None
        return InstallResult(ext.name, path, output)

    def run_install_script(self, ext: Extension, timeout: float | None = None) -> str:
        """Run the extension's install.py now (if it has one); its output, or InstallScriptError."""
        return install.run_installer(ext, self.cache_file, self.args, timeout or install.INSTALL_TIMEOUT)

    def run_install_scripts_at_start(self, force: bool = False) -> list[str]:
        """install.py of each active, non-built-in extension that is new or changed; returns failure messages."""
        if getattr(self.args, "skip_install", False):
            return []
        return install.run_installers_at_start(self.active(), self.cache_file, self.args, force)

    def conflicts(self) -> list[Conflict]:
        """What active extensions asked for that Sumi keeps at its own version: from each one's
        requirements.txt and from its last install.py run (launch.run_pip arguments, pip's resolver)."""
        pins = core_pins()
        recorded = install.recorded_conflicts(self.cache_file)
        in_process = recorded_in_process()
        found: list[Conflict] = []
        for ext in self.active():
            if ext.is_builtin:
                continue
            lines = requirement_lines(ext.path / "requirements.txt")
            found += conflicts_in(lines, pins, ext.name, "requirements.txt")
            found += recorded.get(ext.key, [])
            found += [c for c in in_process if c.extension == ext.name]
        return unique(found)

    def check_for_updates(self, ext: Extension) -> str:
        """Compare with the remote branch: "new commits", "behind HEAD" or "latest" (sets `status`, `can_update`)."""
        self.check_access()
        return install.check_updates(ext if ext.have_info_from_repo else self.read_info(ext))

    def check_all_for_updates(self) -> dict[str, str]:
        """`check_for_updates` for every active extension with a git remote: name -> status or error message."""
        self.check_access()
        results = {}
        for ext in self.list(with_repo_info=True):
            if ext.enabled and ext.remote:
                try:
                    results[ext.name] = self.check_for_updates(ext)
                except ExtensionError as e:
                    results[ext.name] = str(e)
        return results

    def update(self, ext: Extension) -> Extension:
        """`git fetch --all` + `git reset --hard origin/<branch>` (A1111), then re-read the repository."""
        self.check_access()
        with self._lock:
            return install.update_repo(ext if ext.have_info_from_repo else self.read_info(ext))

    def checkout(self, ext: Extension, commit: str) -> Extension:
        """Put the extension's files at `commit` (`git reset --hard`, A1111's config-state restore)."""
        self.check_access()
        with self._lock:
            return install.checkout_commit(ext if ext.have_info_from_repo else self.read_info(ext), commit)

    # --- helpers -------------------------------------------------------------------------------

    def _opt(self, key: str, default: Any) -> Any:
        return getattr(self.options, key, default) if self.options is not None else default

    def _set_opt(self, key: str, value: Any) -> None:
        if self.options is None:
            raise ExtensionError("no settings to store the enabled extensions in")
        if hasattr(self.options, "set") and key in getattr(self.options, "data_labels", {}):
            self.options.set(key, value)
        else:
            setattr(self.options, key, value)

    def _resolver(self) -> Callable[[list[str]], list[str]]:
        """Maps metadata names to canonical names: "a|b" picks the first installed (A1111); folder names work too."""
        aliases = {}
        for ext in self._extensions or []:
            aliases[ext.name.lower()] = ext.canonical_name
            aliases[ext.canonical_name] = ext.canonical_name

        def resolve(names: list[str]) -> list[str]:
            resolved = []
            for name in names:
                choice = next((aliases[o] for o in name.split("|") if o in aliases), name)
                resolved.append(aliases.get(choice, choice))
            return resolved

        return resolve

    def _requirement_problems(self, extensions: list[Extension]) -> list[str]:
        aliases = {e.name.lower(): e for e in extensions} | {e.canonical_name: e for e in extensions}
        mode = self.disable_mode()
        loads = {
            id(e) for e in extensions if e.enabled and mode != "all" and (e.is_builtin or mode == "none")
        }
        problems = []
        for ext in extensions:
            if id(ext) not in loads:
                continue
            for requirement in ext.metadata.requirements("Requires", "Extension"):
                found = [aliases[o] for o in requirement.split("|") if o in aliases]
                if not found:
                    problems.append(
                        f'Extension "{ext.name}" requires "{requirement}" which is not installed.'
                    )
                elif not any(id(f) in loads for f in found):
                    problems.append(f'Extension "{ext.name}" requires "{found[0].name}" which is disabled.')
        return problems


def topological_sort(dependencies: dict[str, list[str]]) -> list[str]:
    """Names ordered so each comes after its dependencies; unknown names and cycles are ignored (A1111)."""
    visited: set[str] = set()
    result: list[str] = []

    def visit(name: str) -> None:
        visited.add(name)
        for dep in dependencies.get(name, []):
            if dep in dependencies and dep not in visited:
                visit(dep)
        result.append(name)

    for name in dependencies:
        if name not in visited:
            visit(name)
    return result


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)
