"""X/Y/Z plot axes that extensions add, as they add them to A1111's: they find the built-in script's module
(`scripts.scripts_data`, `script_class.__module__ == "xyz_grid.py"`), make `xyz_grid.AxisOption(label,
type, apply, format_value=, confirm=, cost=, choices=, prepare=)` (or `AxisOptionTxt2Img` /
`AxisOptionImg2Img` for one tab), often with `xyz_grid.apply_field("attr")`, and append them to
`xyz_grid.axis_options` (adetailer, sd-dynamic-thresholding, neutral-prompt, ControlNet in A1111).

These are A1111's classes and helpers with A1111's signatures: `choices()` takes no argument,
`confirm(p, values)` raises on a bad value, `format_value(p, option, value)`, `prepare(values)` returns
the values to use. `sumi_axis` turns one into the plot's own `AxisOption`, so the plot lists it after
Sumi's axes (their indexes, which API clients send as `x_type`, stay A1111's) and runs it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modules.sumi.engine.errors import InvalidRequestError


class A1111AxisOption:
    """A1111's `xyz_grid.AxisOption`: an axis listed on both tabs (`is_img2img` None)."""

    is_img2img: bool | None = None

    def __init__(
        self,
        label: str,
        type: Any,
        apply: Callable[[Any, Any, list], None],
        format_value: Callable[[Any, Any, Any], str] | None = None,
        confirm: Callable[[Any, list], Any] | None = None,
        cost: float = 0.0,
        choices: Callable[[], list[str]] | None = None,
        prepare: Callable[[list], list] | None = None,
    ) -> None:
        self.label = label
        self.type = type
        self.apply = apply
        self.format_value = format_value if format_value is not None else format_value_add_label
        self.confirm = confirm
        self.cost = cost
        self.prepare = prepare
        self.choices = choices


AxisOption = A1111AxisOption  # the name extensions use


class AxisOptionImg2Img(A1111AxisOption):
    is_img2img = True


class AxisOptionTxt2Img(A1111AxisOption):
    is_img2img = False


def apply_field(field: str) -> Callable[[Any, Any, list], None]:
    """A1111's: an `apply` that sets `p.<field>` to the cell's value."""

    def fun(p: Any, x: Any, xs: list) -> None:
        setattr(p, field, x)

    return fun


def format_value_add_label(p: Any, opt: Any, x: Any) -> str:
    if isinstance(x, float):
        x = round(x, 8)
    return f"{opt.label}: {x}"


def format_value(p: Any, opt: Any, x: Any) -> str:
    if isinstance(x, float):
        x = round(x, 8)
    return str(x)


def format_value_join_list(p: Any, opt: Any, x: Any) -> str:
    return ", ".join(str(v) for v in x)


def format_nothing(p: Any, opt: Any, x: Any) -> str:
    return ""


def do_nothing(p: Any, x: Any, xs: list) -> None:
    pass


def boolean_choice(reverse: bool = False) -> Callable[[], list[str]]:
    return (lambda: ["False", "True"]) if reverse else (lambda: ["True", "False"])


# what the built-in script's module offers extensions under A1111's names (`from ... import *` there)
__all__ = [
    "AxisOption",
    "AxisOptionImg2Img",
    "AxisOptionTxt2Img",
    "apply_field",
    "boolean_choice",
    "do_nothing",
    "format_nothing",
    "format_value",
    "format_value_add_label",
    "format_value_join_list",
]


def sumi_axis(option: Any, axis_class: Callable[..., Any]) -> Any:
    """The plot's `axis_class` (xyz_plot.AxisOption) for an A1111-style option an extension appended."""
    listed = getattr(option, "is_img2img", None)
    tab = None if listed is None else ("img2img" if listed else "txt2img")
    choices = getattr(option, "choices", None)
    return axis_class(
        option.label,
        option.type if option.type in (int, float) else str,
        option.apply,
        format_value=lambda axis, value: str(option.format_value(None, option, value)),
        confirm=lambda app, p, values: _checked(option, p, values),
        cost=float(getattr(option, "cost", 0.0) or 0.0),
        choices=(lambda app: [str(c) for c in choices()]) if choices is not None else None,
        tab=tab,
    )


def _checked(option: Any, p: Any, values: list) -> list:
    """A1111's order after the values are read: each converted by the axis's type, then its `prepare`,
    then its `confirm` (which raises on a bad value)."""
    kind = option.type
    if kind not in (int, float, str) and callable(kind):
        try:
            values = [kind(v) if isinstance(v, str) else v for v in values]
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"a value is not accepted: {exc}") from None
    prepare = getattr(option, "prepare", None)
    if prepare is not None:
        values = list(prepare(values))
    if option.confirm is not None:
        try:
            option.confirm(p, values)
        except (AssertionError, ValueError, RuntimeError) as exc:
            raise InvalidRequestError(str(exc) or "a value is not accepted") from None
    return values
