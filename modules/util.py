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
