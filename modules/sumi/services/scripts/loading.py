"""Importing script files (Sumi's built-in scripts and extensions' `scripts/*.py`) as A1111 does.

While a file is imported its extension folder is first on `sys.path` (so `from scripts.x import y`
works), `modules.scripts.basedir()` returns that folder, and callbacks it registers are tagged with
the file. A file that fails to import is recorded with its traceback and skipped; the rest load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

from modules.sumi.services.scripts.base import Script, ScriptBuiltinUI
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.extension_imports import ExtensionImports
from modules.sumi.services.scripts.postprocessing_base import ScriptPostprocessing
from modules.sumi.services.scripts.postprocessing_main_ui import main_ui_scripts_data
from modules.sumi.services.scripts.postprocessing_runner import ScriptPostprocessingRunner
from modules.sumi.services.scripts.runner import ScriptClassData, ScriptErrors, ScriptRunner

# Sumi's built-in scripts use the A1111 script API like any extension: they are loaded from files.
BUILTIN_SCRIPTS_DIR = Path(__file__).resolve().parents[2] / "builtin_scripts"


def _module_name(path: Path) -> str:
    """A unique module name per script file, so files called alike in two extensions do not clash. Sumi's
    built-in scripts keep A1111's name, the file name ("xyz_grid.py"): extensions look them up by it."""
    if path.parent.resolve() == BUILTIN_SCRIPTS_DIR.resolve():
        return path.name
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"sumi_script_{digest}_{stem}"


class ScriptService:
    def __init__(
        self, callbacks: CallbackRegistry, repo_root: Path | str, options: Any = None, state: Any = None
    ) -> None:
        self.callbacks = callbacks
        self.repo_root = str(repo_root)
        self.current_basedir = self.repo_root
        self.errors = ScriptErrors()
        self.scripts_data: list[ScriptClassData] = []
        # what the tabs' runners are made from: scripts_data and the Extras scripts shown in the main UI
        self.ui_scripts_data: list[ScriptClassData] = []
        self.txt2img = ScriptRunner("txt2img", self.errors)
        self.img2img = ScriptRunner("img2img", self.errors)  # A1111's `scripts_img2img`
        # the Extras tab's scripts (ScriptPostprocessing subclasses): A1111's `scripts_postproc`
        self.postprocessing_data: list[ScriptClassData] = []
        self.postproc = ScriptPostprocessingRunner(options, state, self.errors.report)
        # Whether each tab's script args are laid out (the UI does it while it builds the tab; else
        # `ensure_inputs` does it without a UI).
        self.ready = {"txt2img": False, "img2img": False}
        self._lock = threading.Lock()
        # What extension code gets for `import gradio` etc. (the composition root sets the aliases)
        self.imports = ExtensionImports()

    @property
    def inputs_ready(self) -> bool:
        """The txt2img tab's scripts are laid out (the name the txt2img UI sets)."""
        return self.ready["txt2img"]

    @inputs_ready.setter
    def inputs_ready(self, value: bool) -> None:
        self.ready["txt2img"] = bool(value)

    def runner(self, tab: str) -> ScriptRunner:
        """The ScriptRunner of "txt2img" or "img2img"."""
        return self.img2img if tab == "img2img" else self.txt2img

    def load(
        self,
        files: Sequence[tuple[Path | str, Path | str]],
        loaded: Callable[[Path], None] | None = None,
    ) -> None:
        """Import `(script path, extension folder)` pairs in order and set up both tabs' runners (every
        hook of the img2img runner's scripts sees `is_img2img=True`). `loaded(path)` runs after each
        file (the start-up profile times them)."""
        for path, basedir in files:
            self.scripts_data.extend(self.load_file(Path(path), str(basedir)))
            if loaded is not None:
                loaded(Path(path))
        # opt postprocessing_enable_in_main_ui: those Extras scripts as always-on scripts too (A1111)
        names = getattr(self.postproc.options, "postprocessing_enable_in_main_ui", None) or []
        main_ui = main_ui_scripts_data([str(n) for n in names], self.postprocessing_data)
        self.ui_scripts_data = [*self.scripts_data, *main_ui]
        self.txt2img.initialize_scripts(self.ui_scripts_data)
        self.img2img.initialize_scripts(self.ui_scripts_data)
        self.postproc.initialize_scripts(self.postprocessing_data)

    def builtin_files(self) -> list[tuple[Path, Path]]:
        return [
            (p, Path(self.repo_root))
            for p in sorted(BUILTIN_SCRIPTS_DIR.glob("*.py"))
            if p.name != "__init__.py"
        ]

    def load_file(self, path: Path, basedir: str) -> list[ScriptClassData]:
        module = self._import(path, basedir)
        if module is None:
            return []
        found = []
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, Script)
                and value not in (Script, ScriptBuiltinUI)
            ):
                found.append(ScriptClassData(value, str(path), basedir, module))
            elif (
                isinstance(value, type)
                and issubclass(value, ScriptPostprocessing)
                and value is not ScriptPostprocessing
                and all(d.script_class is not value for d in self.postprocessing_data)  # imported twice
            ):
                self.postprocessing_data.append(ScriptClassData(value, str(path), basedir, module))
        return found

    def _import(self, path: Path, basedir: str) -> ModuleType | None:
        saved_path = list(sys.path)
        if basedir != self.repo_root:
            sys.path.insert(0, basedir)
        self.current_basedir, self.callbacks.current_script = basedir, str(path)
        try:
            name = _module_name(path)
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            # A1111 names a script's module after its file ("supermerger.py"), so its __package__ is the
            # file's stem; scripts test it (supermerger registers its tab only when it is "supermerger")
            module.__package__ = path.stem
            if basedir != self.repo_root:
                self.imports.add_extension_dir(basedir)
                self.imports.prepare(module, Path(basedir).name)
            sys.modules[name] = module  # dataclasses and pickling look their module up here
            spec.loader.exec_module(module)
            return module
        except (Exception, SystemExit) as exc:
            sys.modules.pop(_module_name(path), None)
            self.errors.report(str(path), "import", exc)
            return None
        finally:
            sys.path[:] = saved_path
            self.current_basedir, self.callbacks.current_script = self.repo_root, ""

    def extension_name(self, path: str) -> str | None:
        """The extension whose folder holds script file `path` (None: one of Sumi's own)."""
        return self.imports.extension_at(path)

    def close(self) -> None:
        """Stop giving extension imports their aliases (the App's shutdown)."""
        self.imports.close()

    def ensure_inputs(
        self, context: Callable[[], AbstractContextManager] | None = None, tab: str = "txt2img"
    ) -> ScriptRunner:
        """Lay out the `tab`'s script args without a UI (API-only servers) and return its runner; the
        UI lays them out while it builds the tab (and sets `ready[tab]`).

        `context` makes the throwaway layout the scripts' `ui()` may need (rows, groups: a gr.Blocks)."""
        runner = self.runner(tab)
        with self._lock:
            if not self.ready[runner.tabname]:
                with context() if context is not None else nullcontext():
                    runner.create_inputs()
                self.ready[runner.tabname] = True
        return runner
