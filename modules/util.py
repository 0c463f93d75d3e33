"""A1111's `modules.util`: small file helpers extensions call."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

log = logging.getLogger(__name__)


def natural_sort_key(s: str, regex: re.Pattern = re.compile(r"([0-9]+)")) -> list:
    return [int(text) if text.isdigit() else text.lower() for text in regex.split(s)]


def truncate_path(target_path: str, base_path: str | None = None) -> str:
    """`target_path` relative to `base_path` (default: the current folder) when inside it (A1111)."""
    abs_target, abs_base = os.path.abspath(target_path), os.path.abspath(base_path or os.getcwd())
    try:
        if os.path.commonpath([abs_target, abs_base]) == abs_base:
            return os.path.relpath(abs_target, abs_base)
    except ValueError:
        pass
    return abs_target


def open_folder(path: str | os.PathLike[str]) -> None:
    """Open `path` in the desktop's file manager, as A1111's 📂 buttons do; not with --hide-ui-dir-config."""
    from modules import shared

    app = shared.running_app()
    if app is not None and getattr(app.args, "hide_ui_dir_config", False):
        return
    if not os.path.isdir(path):
        log.warning("Folder %r does not exist; it is created when the first image is saved there", path)
        return
    path = os.path.normpath(path)
    if sys.platform == "win32":
        os.startfile(path)
    elif sys.platform == "darwin":
        subprocess.Popen(["open", path])
    else:
        subprocess.Popen(["xdg-open", path])


class MassFileLister:
    """A1111's: answers whether files exist and their dates, from one listing per folder (kept until
    `reset()`); extra networks pages keep one as `self.lister`."""

    def __init__(self) -> None:
        self.cached: dict[str, dict[str, os.stat_result]] = {}

    def _folder(self, folder: str) -> dict[str, os.stat_result]:
        if folder not in self.cached:
            entries: dict[str, os.stat_result] = {}
            try:
                for entry in os.scandir(folder or "."):
                    try:
                        entries[entry.name.lower()] = entry.stat()
                    except OSError:
                        continue
            except OSError:
                pass
            self.cached[folder] = entries
        return self.cached[folder]

    def exists(self, path: str) -> bool:
        folder, name = os.path.split(path)
        return name.lower() in self._folder(folder)

    def mctime(self, path: str) -> tuple[float, float]:
        """(modified, created) times of `path`, (0, 0) when it is not there."""
        folder, name = os.path.split(path)
        found = self._folder(folder).get(name.lower())
        return (found.st_mtime, found.st_ctime) if found is not None else (0.0, 0.0)

    def update_file_entry(self, path: str) -> None:
        folder, name = os.path.split(path)
        if folder in self.cached:
            try:
                self.cached[folder][name.lower()] = os.stat(path)
            except OSError:
                self.cached[folder].pop(name.lower(), None)

    def reset(self) -> None:
        self.cached.clear()
