"""A1111's `modules.scripts`: the `Script` base class extensions subclass, and the tab runners.

`Script` lives in `modules.sumi.services.scripts.base` and the runners in
`modules.sumi.services.scripts.runner`; the runners of the running App are found through
`modules.shared`, like everything else extensions read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from modules import script_callbacks, shared  # noqa: F401  (A1111 extensions reach `scripts.script_callbacks`)
from modules.sumi.frontends.gradio.scripts_ui import SectionedScriptsUI, outside_the_page
from modules.sumi.services.scripts import runner as _runner
from modules.sumi.services.scripts.base import OnComponent, Script, ScriptBuiltinUI
from modules.sumi.services.scripts.runner import (
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostSampleArgs,
    ScriptClassData,
)


class ScriptRunner(_runner.ScriptRunner):
    """A1111's `ScriptRunner`, also as extensions make their own for a tab they build (mov2mov):
    `initialize_scripts(is_img2img)` makes one instance of every script (as the txt2img / img2img tab
    has), and `prepare_ui()`, `setup_ui_for_section(section)`, `setup_ui()` make their controls where
    they are called (see `SectionedScriptsUI`); `setup_ui()` returns the inputs (`[dropdown, *controls]`,
    A1111's `script_args`), laid out as `scripts_img2img`'s (or `scripts_txt2img`'s) are. `run(p, *args)`
    runs the selected script, and the always-on scripts' hooks run for a job whose `p.scripts` it is."""

    def __init__(self, tabname: str = "txt2img", errors: _runner.ScriptErrors | None = None) -> None:
        app = shared.running_app()
        super().__init__(tabname, errors or (app.scripts.errors if app is not None else None))
        self._ui: SectionedScriptsUI | None = None

    def initialize_scripts(self, is_img2img: Any = False) -> None:
        """A1111's `initialize_scripts(is_img2img)`; Sumi's own callers pass the script classes' data."""
        with outside_the_page():  # as A1111, which makes them before a tab's Blocks (mov2mov: inside a tab)
            if isinstance(is_img2img, bool):
                self.tabname, self.is_img2img = ("img2img" if is_img2img else "txt2img"), is_img2img
                super().initialize_scripts(shared.app().scripts.ui_scripts_data)
            else:
                super().initialize_scripts(is_img2img)

    def prepare_ui(self) -> None:
        self.inputs = [None]
        self._ui = SectionedScriptsUI(self, shared.app().callbacks)

    def setup_ui_for_section(self, section: str | None, scriptlist: list[Any] | None = None) -> None:
        if self._ui is None:
            self.prepare_ui()
        assert self._ui is not None
        self._ui.section(section, scriptlist)

    def setup_ui(self) -> list[Any]:
        if self._ui is None:
            self.prepare_ui()
        assert self._ui is not None
        self.inputs = self._ui.finish()
        self._ui = None
        return self.inputs


def basedir() -> str:
    """The folder of the extension whose script is being imported (A1111: only valid during import)."""
    return shared.app().scripts.current_basedir


class ScriptFile(NamedTuple):
    basedir: str
    filename: str
    path: str


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFile]:
    """A1111: the `<scriptdirname>/*<extension>` files of Sumi's folder and of every enabled extension,
    in load order (extensions use it to find e.g. each extension's `localizations/*.json`)."""
    a = shared.app()
    root = a.paths.repo_root / scriptdirname
    files = a.extensions.ordered_files(scriptdirname, extension.lower(), root_dir=root)
    return [
        ScriptFile(str(f.extension.path if f.extension else a.paths.repo_root), f.path.name, str(f.path))
        for f in files
        if include_extensions or f.extension is None
    ]


def __getattr__(name: str) -> Any:
    resolvers = {
        "scripts_txt2img": lambda a: a.scripts.txt2img,
        "scripts_current": lambda a: a.scripts.txt2img,
        "scripts_data": lambda a: a.scripts.scripts_data,
        "postprocessing_scripts_data": lambda a: a.scripts.postprocessing_data,
        "scripts_img2img": lambda a: a.scripts.img2img,
        "scripts_postproc": lambda a: a.scripts.postproc,
    }
    if name in resolvers:
        return resolvers[name](shared.app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlwaysVisible",
    "MaskBlendArgs",
    "OnComponent",
    "PostProcessMaskOverlayArgs",
    "PostSampleArgs",
    "PostprocessBatchListArgs",
    "PostprocessImageArgs",
    "Script",
    "ScriptBuiltinUI",
    "ScriptClassData",
    "ScriptFile",
    "ScriptRunner",
    "basedir",
    "list_scripts",
]
