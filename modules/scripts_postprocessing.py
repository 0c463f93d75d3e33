"""A1111's `modules.scripts_postprocessing`: the base class of Extras-tab scripts.

Extensions (rembg, ReActor, roop) subclass `ScriptPostprocessing`; their scripts show in the Extras tab
and run on its images. The classes live in `modules.sumi.services.postprocessing`.
"""

from __future__ import annotations

from modules.sumi.services.scripts.postprocessing_base import (
    PostprocessedImage,
    PostprocessedImageSharedInfo,
    ScriptPostprocessing,
)
from modules.sumi.services.scripts.postprocessing_runner import ScriptPostprocessingRunner

__all__ = [
    "PostprocessedImage",
    "PostprocessedImageSharedInfo",
    "ScriptPostprocessing",
    "ScriptPostprocessingRunner",
]
