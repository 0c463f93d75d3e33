"""A1111's `modules` package: its submodules (the facades below) are also reached as attributes of the
package once `import modules` ran, as in A1111, where the web UI had imported them all before an extension
ran: `modules.ui.create_refresh_button`, `modules.shared.opts`."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).parent


def __getattr__(name: str) -> ModuleType:
    if not name.startswith("_") and (
        (_HERE / f"{name}.py").is_file() or (_HERE / name / "__init__.py").is_file()
    ):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
