"""What modules loaded from extension folders see when they import: a per-folder view of some names.

A1111 extensions target Gradio 3; Sumi runs a newer Gradio. Rather than patching the real module for
everyone (Sumi's own UI must never depend on a compatibility layer), modules whose files lie in an
extension folder get their own `__builtins__` whose `__import__` answers aliased names (e.g. "gradio")
with a replacement module. That covers the extension's `scripts/*.py` (prepared by the script loader
before they run) and every helper module or package it imports from its folder (a meta-path finder
wraps their loaders), including imports inside functions run later. Everything else imports normally.

Not covered, on purpose: `importlib.import_module("gradio")` and `sys.modules["gradio"]` give the real
module (code that goes that far around the import statement gets what it asked for).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

# The module global that names the extension a module belongs to (compatibility layers read it to
# name the extension in their warnings).
EXTENSION_GLOBAL = "__sumi_extension__"


def extension_of(frame_globals: dict[str, Any]) -> str | None:
    """The extension whose module owns these globals (None: not an extension's module)."""
    value = frame_globals.get(EXTENSION_GLOBAL)
    return value if isinstance(value, str) else None


class ExtensionImports:
    """Aliased top-level module names for the code of registered extension folders."""

    def __init__(self) -> None:
        self._aliases: dict[str, Callable[[], ModuleType]] = {}
        self._resolved: dict[str, ModuleType] = {}
        self._roots: dict[str, str] = {}  # folder (resolved, with a trailing separator) -> extension name
        self._builtins: dict[str, Any] | None = None
        self._finder = _ExtensionFinder(self)
        self._lock = threading.Lock()

    # -- configuration -------------------------------------------------------------------------------
    def alias(self, name: str, provider: Callable[[], ModuleType]) -> None:
        """Extension code importing top-level `name` (or `name.sub`) gets `provider()`'s module instead."""
        if "." in name:
            raise ValueError(f"only top-level module names can be aliased, not {name!r}")
        self._aliases[name] = provider
        self._resolved.pop(name, None)
        self._builtins = None

    @property
    def active(self) -> bool:
        return bool(self._aliases)

    def add_extension_dir(self, folder: Path | str, name: str | None = None) -> None:
        """Treat every module under `folder` as extension `name`'s (default: the folder's name)."""
        path = Path(folder).resolve()
        self._roots[str(path).rstrip("/\\") + "/"] = name or path.name
        if self.active and self._finder not in sys.meta_path:
            sys.meta_path.insert(0, self._finder)

    def close(self) -> None:
        """Stop wrapping imports (the App's shutdown)."""
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)

    # -- use -----------------------------------------------------------------------------------------
    def extension_at(self, filename: str | None) -> str | None:
        """The extension whose folder holds `filename`, or None."""
        if not filename or not self._roots:
            return None
        path = str(Path(filename).resolve())
        for root, name in self._roots.items():
            if path.startswith(root):
                return name
        return None

    def prepare(self, module: ModuleType, extension: str) -> None:
        """Make `module` (about to run) import through the aliases and know its extension."""
        module.__dict__[EXTENSION_GLOBAL] = extension
        if self.active:
            module.__dict__["__builtins__"] = self._extension_builtins()

    def _extension_builtins(self) -> dict[str, Any]:
        if self._builtins is None:
            table = dict(builtins.__dict__)
            table["__import__"] = self._import
            self._builtins = table
        return self._builtins

    def _alias_module(self, top: str) -> ModuleType:
        module = self._resolved.get(top)
        if module is None:
            with self._lock:
                module = self._resolved.get(top) or self._aliases[top]()
                self._resolved[top] = module
        return module

    def _import(
        self,
        name: str,
        globals: dict[str, Any] | None = None,  # noqa: A002 - builtins.__import__'s signature
        locals: dict[str, Any] | None = None,  # noqa: A002
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        top = name.partition(".")[0]
        if level != 0 or top not in self._aliases:
            return builtins.__import__(name, globals, locals, fromlist or (), level)
        module = self._alias_module(top)
        if name == top or not fromlist:
            if name != top:  # `import gradio.routes`: the real submodule must exist for the alias's lookup
                importlib.import_module(name)
            return module
        # `from gradio.components import X`: the alias's view of the submodule
        importlib.import_module(name)
        for part in name.split(".")[1:]:
            module = getattr(module, part)
        return module


class _ExtensionFinder(importlib.abc.MetaPathFinder):
    """Finds modules as the path finder does; those in an extension folder get a loader that prepares
    them (aliases, extension name) before their code runs."""

    def __init__(self, owner: ExtensionImports) -> None:
        self.owner = owner

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not self.owner.active:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not spec.has_location:
            return None
        extension = self.owner.extension_at(spec.origin)
        if extension is None:
            return None
        spec.loader = _PreparingLoader(spec.loader, self.owner, extension)
        return spec


class _PreparingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, owner: ExtensionImports, extension: str) -> None:
        self._inner, self._owner, self._extension = inner, owner, extension

    def create_module(self, spec: Any) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._owner.prepare(module, self._extension)
        self._inner.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # get_data, get_resource_reader, is_package, ...
        return getattr(self._inner, name)
