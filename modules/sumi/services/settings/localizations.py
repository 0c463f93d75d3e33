"""A1111's localizations: `<name>.json` files in the localizations folder (`--localizations-dir`,
default `<data-dir>/localizations`) and in each enabled extension's `localizations/` folder.

A name found in several places merges its files in that order (the folder first, then extensions in
load order; a later file's key wins), as A1111's `modules/localization.py`. The "Localization" setting
lists "None" and every name; the page gets the chosen one's merged JSON as `window.localization`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NONE = "None"


class Localizations:
    """The localization files by name, read again on every `refresh()`."""

    def __init__(self, folder: Path, extension_files: Callable[[], Iterable[Path]]) -> None:
        self.folder = folder
        self._extension_files = extension_files
        self.files: dict[str, list[Path]] = {}

    def refresh(self) -> dict[str, list[Path]]:
        """Scan the folder and the extensions again (A1111's `list_localizations`)."""
        files: dict[str, list[Path]] = {}
        if self.folder.is_dir():
            for path in sorted(self.folder.iterdir()):
                if path.suffix.lower() == ".json" and path.is_file():
                    files[path.stem] = [path]
        for path in self._extension_files():
            files.setdefault(path.stem, []).append(path)
        self.files = files
        return files

    def names(self) -> list[str]:
        return sorted(self.refresh(), key=str.lower)

    def setting_choices(self) -> dict[str, Any]:
        """The "Localization" dropdown: "None" and the names found now."""
        return {"choices": [NONE, *self.names()]}

    def data(self, name: str | None) -> dict[str, Any]:
        """The merged translations of `name` ({} for None or an unknown name). A file that cannot be
        read or is not a JSON object is logged with its path and left out."""
        if not name or name == NONE:
            return {}
        paths = self.refresh().get(name, [])
        merged: dict[str, Any] = {}
        for path in paths:
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.error("Error loading localization from %s: %s", path, exc)
                continue
            if not isinstance(content, dict):
                log.error("Error loading localization from %s: not a JSON object", path)
                continue
            merged.update(content)
        return merged
