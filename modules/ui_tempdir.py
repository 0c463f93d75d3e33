"""A1111's `modules.ui_tempdir`: where Gradio keeps uploaded and shown files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _temp_roots() -> list[Path]:
    from modules import shared

    roots = [Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")]
    app = shared.running_app()
    if app is not None and app.options.temp_dir:
        roots.append(Path(app.options.temp_dir))
    return [root.resolve() for root in roots]


def is_gradio_temp_path(path: str | os.PathLike) -> bool:
    """True if `path` is inside one of Gradio's temporary folders (or the `temp_dir` setting's)."""
    target = Path(path).resolve()
    return any(target.is_relative_to(root) for root in _temp_roots())
