"""A1111's `Script` base class that extensions (and Sumi's built-in scripts) subclass.

Names and meanings are A1111's (`title`, `show`, `ui`, `run`, `process`, `args_from`/`args_to`,
`AlwaysVisible`, ...). The runners that call these hooks are `services.scripts.runner.ScriptRunner`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modules.sumi.services.scripts.runner import PostprocessBatchListArgs, PostprocessImageArgs


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
    ui_failed: bool = False  # its ui() raised: no controls, its API args are passed through
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
