"""The output folder settings' defaults as A1111 writes them: under the data dir, and absolute when
the data dir is not the working folder.

Sumi resolves a relative folder setting against the data dir; an extension opens
`opts.outdir_txt2img_samples` as it is, relative to the process's working folder (A1111's, the install
folder). A1111 builds these defaults from its data path and keeps them relative only under the working
folder, so with `--data-dir` elsewhere extensions get absolute paths. Sumi does the same, so an
extension that lists or writes `opts.outdir_*` meets the folders Sumi writes to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def anchor_output_defaults(options: Any, data_dir: Path, cwd: Path | None = None) -> list[str]:
    """Make each relative `outdir_*` default of `options` absolute under `data_dir` unless `data_dir` is
    the working folder (then "outputs/..." means the same to Sumi and to extensions). Values still at
    their default follow; call it before config.json is loaded. Returns the keys changed."""
    here = Path(os.path.realpath(cwd if cwd is not None else Path.cwd()))
    if Path(os.path.realpath(data_dir)) == here:
        return []
    changed = []
    for key, info in options.data_labels.items():
        default = info.default
        if not (key.startswith("outdir_") and isinstance(default, str) and default.strip()):
            continue
        if Path(default).is_absolute():
            continue
        anchored = str(Path(data_dir) / default)
        if options.global_data().get(key) == default:
            options.global_data()[key] = anchored
        info.default = anchored
        changed.append(key)
    return changed
