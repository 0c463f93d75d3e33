"""sd-webui-controlnet's Control Type filter (the UI's radio and `GET /controlnet/control_types`): for
each preprocessor tag, the preprocessors with it, the models whose names say it, and the defaults.

As the extension: "All" lists everything with `none` / "None" as defaults; another type lists "none"
and its preprocessors (dropdown order) with the second as the default, and "None" plus the models whose
name holds the type or one of its aliases (`normal` for NormalMap, `t2iadapter` for T2I-Adapter,
`ipadapter`, `seg`, ...; `union` for the types a ControlNet Union model serves); the default model is a
ControlNet 1.1 one (`11` in its name) when there is one, else the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modules.sumi.engine.controlnet.preprocessors import list_preprocessors

ALL = "All"
_ALIASES = {
    "instructp2p": ("ip2p",),
    "segmentation": ("seg",),
    "normalmap": ("normal",),
    "t2i-adapter": ("t2i_adapter", "t2iadapter", "t2ia"),
    "ip-adapter": ("ip_adapter", "ipadapter"),
    "openpose": ("openpose", "densepose"),
    "instant-id": ("instant_id", "instantid"),
    "scribble": ("sketch",),
    "tile": ("blur",),
}
# Types a ControlNet Union model serves (its file name holds "union").
_UNION_TAGS = {
    "openpose",
    "depth",
    "softedge",
    "scribble",
    "canny",
    "lineart",
    "mlsd",
    "normalmap",
    "segmentation",
    "tile",
    "inpaint",
}


@dataclass(frozen=True)
class ControlType:
    module_list: list[str]
    model_list: list[str]
    default_option: str
    default_model: str

    def as_dict(self) -> dict:
        return {
            "module_list": self.module_list,
            "model_list": self.model_list,
            "default_option": self.default_option,
            "default_model": self.default_model,
        }


def control_type_names() -> list[str]:
    """ "All", then every preprocessor tag, sorted (the radio's choices)."""
    tags = {tag for p in list_preprocessors() for tag in p.tags}
    return [ALL, *sorted(tags)]


def select_control_type(control_type: str, model_names: Sequence[str]) -> ControlType:
    """The preprocessors, models and defaults of `control_type` among `model_names` ("None" first)."""
    models = list(model_names)
    if control_type == ALL or control_type not in control_type_names():
        return ControlType([p.label for p in list_preprocessors()], models, "none", "None")
    filters = _filters(control_type)
    chosen = [m for m in models if m.lower() == "none" or any(f in m.lower() for f in filters)]
    default_model = "None"
    if len(chosen) > 1:
        default_model = next((m for m in chosen if "11" in m.split("[")[0]), chosen[1])
    modules = [p.label for p in list_preprocessors() if control_type in p.tags or p.name == "none"]
    default_option = modules[0] if len(modules) == 1 else modules[1]
    return ControlType(modules, chosen, default_option, default_model)


def _filters(control_type: str) -> set[str]:
    tag = control_type.lower()
    return {tag, *_ALIASES.get(tag, ()), *(("union",) if tag in _UNION_TAGS else ())}


def control_types(model_names: Sequence[str]) -> dict[str, dict]:
    """`GET /controlnet/control_types`: every type's lists and defaults."""
    return {name: select_control_type(name, model_names).as_dict() for name in control_type_names()}
