"""sd-webui-controlnet's X/Y/Z plot axes, which the extension appends after A1111's own (so API clients
send the same axis numbers): `[ControlNet] Enabled`, `Model`, `Weight`, `Guidance Start`, `Guidance End`,
`Control Mode`, `Resize Mode`, `Preprocessor`, `Pre Resolution`, `Pre Threshold A`, `Pre Threshold B`.

As the extension: a value applies to every unit of the job, except `Enabled`, which switches the first
unit only. Values are checked before the first image: a job without a unit, an unknown model,
preprocessor, control mode or resize mode is refused with the axis named. Each cell works on its own
copies of the units, and cells that only change weight, guidance or mode reuse the detected map.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modules.sumi.engine.controlnet.control import CONTROL_MODES
from modules.sumi.engine.controlnet.image_fit import ResizeMode, parse_resize_mode
from modules.sumi.engine.controlnet.preprocessors import get_preprocessor, list_preprocessors
from modules.sumi.engine.errors import InvalidRequestError

PREFIX = "[ControlNet] "


def _apply(field: str, first_only: bool) -> Callable[[Any, Any, list], None]:
    def apply(p: Any, value: Any, values: list) -> None:
        units = [copy.copy(unit) for unit in p.controlnet_units]
        for index, unit in enumerate(units):
            if index == 0 or not first_only:
                setattr(unit, field, value)
        p.controlnet_units = units

    return apply


def _has_units(p: Any) -> None:
    if not getattr(p, "controlnet_units", None):
        raise InvalidRequestError(
            "the job has no ControlNet unit; set one up in the ControlNet panel "
            "(or send alwayson_scripts.controlnet) and plot over it"
        )


def _each(check: Callable[[Any, Any], Any]) -> Callable[[Any, Any, list], list]:
    def confirm(app: Any, p: Any, values: list) -> list:
        _has_units(p)
        return [check(app, value) for value in values]

    return confirm


def _enabled(app: Any, value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise InvalidRequestError(f"{value!r} is not True or False")


def _model_names(app: Any) -> list[str]:
    controlnet = getattr(app, "controlnet", None)
    return [model.name for model in controlnet.models.list()] if controlnet is not None else []


def _model(app: Any, value: Any) -> str:
    controlnet = getattr(app, "controlnet", None)
    if controlnet is None or controlnet.models.find(str(value)) is None:
        raise InvalidRequestError(f"no ControlNet model {value!r}; see /controlnet/model_list")
    return str(value)


def _control_mode(app: Any, value: Any) -> str:
    for mode in CONTROL_MODES:
        if mode.lower() == str(value).strip().lower():
            return mode
    raise InvalidRequestError(f"{value!r} is not a control mode ({', '.join(CONTROL_MODES)})")


def _resize_mode(app: Any, value: Any) -> str:
    return parse_resize_mode(str(value)).value


def _preprocessor(app: Any, value: Any) -> str:
    return get_preprocessor(str(value)).name


def _number(app: Any, value: Any) -> Any:
    return value


@dataclass(frozen=True)
class ControlNetAxis:
    label: str
    type: Any
    apply: Callable[[Any, Any, list], None]
    confirm: Callable[[Any, Any, list], list]
    choices: Callable[[Any], list[str]] | None = None
    cost: float = 0.0


def _axis(
    name: str,
    kind: Any,
    field: str,
    check: Callable[[Any, Any], Any] = _number,
    choices: Callable[[Any], list[str]] | None = None,
    cost: float = 0.0,
) -> ControlNetAxis:
    first_only = field == "enabled"
    return ControlNetAxis(PREFIX + name, kind, _apply(field, first_only), _each(check), choices, cost)


CONTROLNET_AXES = (
    _axis("Enabled", str, "enabled", _enabled, lambda app: ["False", "True"]),
    _axis("Model", str, "model", _model, _model_names, cost=0.9),
    _axis("Weight", float, "weight"),
    _axis("Guidance Start", float, "guidance_start"),
    _axis("Guidance End", float, "guidance_end"),
    _axis("Control Mode", str, "control_mode", _control_mode, lambda app: list(CONTROL_MODES)),
    _axis("Resize Mode", str, "resize_mode", _resize_mode, lambda app: [m.value for m in ResizeMode]),
    _axis("Preprocessor", str, "module", _preprocessor, lambda app: [p.name for p in list_preprocessors()]),
    _axis("Pre Resolution", int, "processor_res"),
    _axis("Pre Threshold A", float, "threshold_a"),
    _axis("Pre Threshold B", float, "threshold_b"),
)
