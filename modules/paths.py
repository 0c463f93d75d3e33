"""A1111's `modules.paths`: where the install and the user's files are, for extensions.

`models_path`, `data_path`, `script_path`, `extensions_dir`, ... (and the rest of
`modules.paths_internal`) are answered on access from the running App's `DataPaths`, or from this
process's command line before there is an App, so this module holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modules import shared
from modules.sumi.services.settings.paths import DataPaths, current_paths

__all__ = ["DataPaths", "a1111_paths", "current_paths"]

A1111_NAMES: dict[str, Callable[[DataPaths], Path]] = {
    "script_path": lambda p: p.repo_root,
    "data_path": lambda p: p.data_dir,
    "models_path": lambda p: p.models_dir,
    "extensions_dir": lambda p: p.extensions_dir,
    "extensions_builtin_dir": lambda p: p.extensions_builtin_dir,
    "default_output_dir": lambda p: p.outputs_dir,
}


def a1111_paths() -> DataPaths:
    """The running App's paths, else this process's command line's."""
    app = shared.running_app()
    return app.paths if app is not None else current_paths()


def __getattr__(name: str) -> object:
    if name in A1111_NAMES:
        return str(A1111_NAMES[name](a1111_paths()))
    from modules import paths_internal  # A1111's modules.paths re-exports all of paths_internal

    if name in paths_internal.__all__:
        return getattr(paths_internal, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
