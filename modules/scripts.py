"""A1111's `modules.scripts`: the `Script` base class extensions subclass, and the tab runners.

Names and meanings are A1111's (`title`, `show`, `ui`, `run`, `process`, `args_from`/`args_to`,
`AlwaysVisible`, `basedir()`, `scripts_txt2img`, ...). The work is done by
`modules.script_runner.ScriptRunner`; the runners live on the App and are found through
`modules.shared`, like everything else extensions read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from modules import script_callbacks, shared  # noqa: F401  (A1111 extensions reach `scripts.script_callbacks`)
from modules.script_runner import (
    AlwaysVisible,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    ScriptClassData,
    ScriptRunner,
)


@dataclass
class OnComponent:
    component: Any


class Script:
    """Base class of A1111 scripts. Override `title`, and `show`/`ui`/`run` or the always-on hooks."""

    name: str | None = None
    section: str | None = None
    filename: str | None = None
    args_from: int | None = None
    args_to: int | None = None
    alwayson: bool = False
    is_txt2img: bool = False
    is_img2img: bool = False
    tabname: str | None = None
    group: Any = None
    create_group: bool = True
    infotext_fields: list | None = None
    paste_field_names: list | None = None
    api_info: Any = None
    setup_for_ui_only: bool = False
    controls: list | None = None
    on_before_component_elem_id: list | None = None
    on_after_component_elem_id: list | None = None

    def title(self) -> str:
        raise NotImplementedError

    def ui(self, is_img2img: bool) -> Any:
        return None

    def show(self, is_img2img: bool) -> Any:
        return True

    def run(self, p, *args):
        return None

    def setup(self, p, *args) -> None:
        pass

    def before_process(self, p, *args) -> None:
        pass

    def process(self, p, *args) -> None:
        pass

    def before_process_batch(self, p, *args, **kwargs) -> None:
        pass

    def after_extra_networks_activate(self, p, *args, **kwargs) -> None:
        pass

    def process_before_every_sampling(self, p, *args, **kwargs) -> None:
        pass

    def process_batch(self, p, *args, **kwargs) -> None:
        pass

    def postprocess_batch(self, p, *args, **kwargs) -> None:
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs) -> None:
        pass

    def post_sample(self, p, ps, *args) -> None:
        pass

    def on_mask_blend(self, p, mba, *args) -> None:
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args) -> None:
        pass

    def postprocess_maskoverlay(self, p, ppmo, *args) -> None:
        pass

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args) -> None:
        pass

    def postprocess(self, p, processed, *args) -> None:
        pass

    def before_hr(self, p, *args) -> None:
        pass

    def before_component(self, component, **kwargs) -> None:
        pass

    def after_component(self, component, **kwargs) -> None:
        pass

    def on_before_component(self, callback, *, elem_id: str) -> None:
        """Call `callback(OnComponent)` before the component with `elem_id` is created."""
        self.on_before_component_elem_id = (self.on_before_component_elem_id or []) + [(elem_id, callback)]

    def on_after_component(self, callback, *, elem_id: str) -> None:
        """Call `callback(OnComponent)` after the component with `elem_id` is created."""
        self.on_after_component_elem_id = (self.on_after_component_elem_id or []) + [(elem_id, callback)]

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """`script_<tab>_<title>_<item>` (the tab only when the script shows on both tabs), as A1111."""
        need_tabname = self.show(True) == self.show(False)
        tabname = ("img2img_" if self.is_img2img else "txt2img_") if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


class ScriptBuiltinUI(Script):
    setup_for_ui_only = True

    def elem_id(self, item_id: str) -> str:
        need_tabname = self.show(True) == self.show(False)
        tabname = ("img2img" if self.is_img2img else "txt2img") + "_" if need_tabname else ""
        return f"{tabname}{item_id}"


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
        "postprocessing_scripts_data": lambda a: [],
        "scripts_img2img": lambda a: a.scripts.img2img,
        "scripts_postproc": lambda a: None,
    }
    if name in resolvers:
        return resolvers[name](shared.app())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlwaysVisible",
    "OnComponent",
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
