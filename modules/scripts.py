"""A1111's `modules.scripts`: the `Script` base class extensions subclass, and the tab runners.

`Script` lives in `modules.sumi.services.scripts.base` and the runners in
`modules.sumi.services.scripts.runner`; the runners of the running App are found through
`modules.shared`, like everything else extensions read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from modules import script_callbacks, shared  # noqa: F401  (A1111 extensions reach `scripts.script_callbacks`)
from modules.sumi.services.scripts.base import OnComponent, Script, ScriptBuiltinUI
from modules.sumi.services.scripts.runner import (
    AlwaysVisible,
    MaskBlendArgs,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    PostProcessMaskOverlayArgs,
    PostSampleArgs,
    ScriptClassData,
    ScriptRunner,
)


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
