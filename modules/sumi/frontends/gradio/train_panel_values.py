"""A Train-tab panel's widget values as a settings object, by the settings class's field types.

Gradio gives floats for every number box (`4.0` for an int field), None for an untouched textbox and 0
for a cleared optional number; `settings_from_panel` turns each into what its field's type says:
`int` rounds, `float` stays, `float | None` makes 0 mean "unset", `str` makes None "" (stripped for the
names in `stripped`: paths and file names), everything else passes as it is. The settings class then
checks the values and names a bad field.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from typing import Any, TypeVar

S = TypeVar("S")


def settings_from_panel(
    cls: type[S], names: list[str], values: Iterable[Any], stripped: Iterable[str] = ()
) -> S:
    hints = typing.get_type_hints(cls)
    keep_stripped = set(stripped)
    fields = {
        name: _as_field(hints.get(name), value, name in keep_stripped)
        for name, value in zip(names, values, strict=True)
    }
    return cls(**fields)


def _as_field(hint: Any, value: Any, strip: bool) -> Any:
    if hint is int:
        return int(value or 0)
    if hint is float:
        return float(value or 0)
    if hint == float | None:
        return float(value) if value else None
    if hint is str:
        text = "" if value is None else str(value)
        return text.strip() if strip else text
    return value
