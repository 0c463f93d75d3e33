"""A1111's `modules.paths_internal`: where the install and the user's files are, as strings.

The folder names (`script_path`, `data_path`, `models_path`, `extensions_dir`, ...) come from
`modules.paths`, which answers them from the running App, so both modules always agree. A1111's
`configs/*.yaml` do not exist in Sumi (its model configs are Python classes), so `sd_configs_path`
and `sd_default_config` name where A1111 keeps them and nothing reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from modules import paths
from modules.sumi.services.settings.paths import DataPaths


def normalized_filepath(filepath: str) -> str:
    return str(Path(filepath).absolute())


_EXTRA: dict[str, Callable[[DataPaths], Path]] = {
    "modules_path": lambda p: p.repo_root / "modules",
    "sd_configs_path": lambda p: p.repo_root / "configs",
    "sd_default_config": lambda p: p.repo_root / "configs" / "v1-inference.yaml",
    "sd_model_file": lambda p: p.repo_root / "model.ckpt",
    "default_sd_model_file": lambda p: p.repo_root / "model.ckpt",
    "config_states_dir": lambda p: p.data_dir / "config_states",
}

__all__ = [*paths.A1111_NAMES, *_EXTRA, "cwd", "normalized_filepath"]  # noqa: F822 (from __getattr__)


def __getattr__(name: str) -> str:
    if name in paths.A1111_NAMES:
        return getattr(paths, name)
    if name in _EXTRA:
        return str(_EXTRA[name](paths.a1111_paths()))
    if name == "cwd":
        return os.getcwd()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
