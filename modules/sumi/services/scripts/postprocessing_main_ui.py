"""Extras operations in txt2img and img2img (A1111's `scripts_auto_postprocessing`): every Extras script
named in opt `postprocessing_enable_in_main_ui` also becomes an always-on script of both tabs, with
its own controls, run on each generated image (`postprocess_image`); its infotext entries go into the
image's infotext. Read when the scripts load, so a change takes a restart (as in A1111)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from modules.sumi.services.scripts.base import Script
from modules.sumi.services.scripts.postprocessing_base import PostprocessedImage, ScriptPostprocessing
from modules.sumi.services.scripts.runner import AlwaysVisible, ScriptClassData


class ScriptPostprocessingForMainUI(Script):
    """An Extras script shown and run as an always-on txt2img/img2img script."""

    def __init__(self, script: ScriptPostprocessing) -> None:
        self.script = script
        self.postprocessing_controls: dict[str, Any] = {}

    def title(self) -> str:
        return str(self.script.name)

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        self.postprocessing_controls = dict(self.script.ui() or {})
        return list(self.postprocessing_controls.values())

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        values = dict(zip(self.postprocessing_controls, args, strict=False))
        image = PostprocessedImage(pp.image)
        self.script.process_firstpass(image, **values)
        self.script.process(image, **values)
        p.extra_generation_params.update(image.info)
        pp.image = image.image


def main_ui_scripts_data(
    names: Sequence[str], postprocessing_data: Sequence[ScriptClassData]
) -> list[ScriptClassData]:
    """ScriptClassData entries making the named Extras scripts always-on scripts (unknown names skipped)."""
    found = []
    for name in names:
        data = next((d for d in postprocessing_data if getattr(d.script_class, "name", None) == name), None)
        if data is not None:
            maker = partial(_wrapped, data.script_class)
            found.append(ScriptClassData(maker, data.path, data.basedir, data.module))  # pyright: ignore[reportArgumentType]
    return found


def _wrapped(script_class: type) -> ScriptPostprocessingForMainUI:
    return ScriptPostprocessingForMainUI(script_class())
